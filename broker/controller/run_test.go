package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/metastore"
	"github.com/strata-broker/strata/metastore/metastoretest"
)

var (
	_ Store = (*metastore.Store)(nil)
	_ Term  = (*metastore.ControllerTerm)(nil)
)

// A controller elected in the metastore moves leadership off a broker that
// left and takes it out of the ISR, through its term.
func TestRunMovesLeadershipOffAGoneBroker(t *testing.T) {
	store := metastoretest.New()
	ctx := t.Context()
	regs := map[int32]*metastoretest.Registration{}
	for id := int32(1); id <= 2; id++ {
		reg, err := store.RegisterBroker(ctx, metastore.BrokerInfo{NodeID: id}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs[id] = reg
	}
	if _, err := store.CreateTopic(ctx, metastore.Topic{Name: "t"}, [][]int32{{1, 2}}); err != nil {
		t.Fatal(err)
	}
	term, err := store.CampaignController(ctx, regs[2])
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(runCtx, store, term, nil, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	regs[1].Expire()
	await.NoError(t, 10*time.Second, "leadership to move off broker 1", func() error {
		states, err := store.PartitionStates(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		st := states[0]
		if st.Leader != 2 {
			return fmt.Errorf("state %+v", st)
		}
		if st.LeaderEpoch != 1 || !slices.Equal(st.ISR, []int32{2}) {
			t.Fatalf("state after broker 1 left: %+v, want leader 2 in epoch 1, ISR [2]", st)
		}
		return nil
	})
}
