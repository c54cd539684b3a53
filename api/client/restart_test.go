package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/testenv"
)

// The review's repro: records produced while the broker restarts must neither
// fail nor go missing (they are retried until the broker is back).
func TestProduceAcrossBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs strata dev")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	c := dial(t, dev.GRPCAddr)
	createTopic(t, c, "restart", 1)
	p := newProducer(t, c, client.ProducerOptions{})
	cons := newConsumer(t, c, client.ConsumerOptions{Topic: "restart", Follow: true})

	const n = 40
	var mu sync.Mutex
	var errs []error
	acked := 0
	ctx := testCtx(t)
	third := make(chan struct{})
	produced := make(chan struct{})
	go func() { // a console producer: one record every 20 ms
		defer close(produced)
		for i := range n {
			if i == n/3 {
				close(third)
			}
			p.Produce(ctx, "restart", client.Record{Partition: 0, Value: fmt.Appendf(nil, "r%d", i+1)}, func(_ client.Result, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acked++
				}
			})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	<-third
	dev.Stop() // the broker ends streams and calls with Unavailable
	dev.Restart(t)
	<-produced
	flushCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := p.Flush(flushCtx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(errs) > 0 || acked != n {
		t.Fatalf("%d acknowledged, %d failed (first: %v)", acked, len(errs), errs)
	}
	mu.Unlock()
	got := pollN(t, cons, n)
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for i := 1; i <= n; i++ {
		if seen[fmt.Sprintf("r%d", i)] == 0 {
			t.Errorf("r%d acknowledged but missing from the topic", i)
		}
	}
}
