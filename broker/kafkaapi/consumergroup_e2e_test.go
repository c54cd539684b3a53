package kafkaapi_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
)

// TestConsumerGroupProtocolWithFranzGo: two franz-go consumers of the
// consumer group protocol (KIP-848) share a topic through the coordinator's
// assignment, commit with their member epochs, and the group is listed and
// described as a consumer group.
func TestConsumerGroupProtocolWithFranzGo(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"group.consumer.heartbeat.interval.ms": "200", "group.consumer.min.heartbeat.interval.ms": "100"})
	ctx := ctxFor(t)
	adm := kadm.NewClient(newClient(t, addr))
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	p := newClient(t, addr, kgo.DefaultProduceTopic("events"))
	for i := range 40 {
		if err := p.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	held := map[int]map[int32]bool{0: {}, 1: {}}
	seen := map[string]bool{}
	member := func(i int) *kgo.Client {
		return newClient(t, addr, kgo.ConsumerGroup("next-gen"), kgo.ConsumeTopics("events"), kgo.ServerSideBalancer(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m["events"] {
					held[i][p] = true
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m["events"] {
					delete(held[i], p)
				}
			}))
	}
	a, b := member(0), member(1)
	poll := func(cl *kgo.Client) {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		fs := cl.PollFetches(pctx)
		mu.Lock()
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		mu.Unlock()
		// A commit made while the member epoch moves is refused as stale;
		// the next owner commits.
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && !errors.Is(err, kerr.StaleMemberEpoch) && !errors.Is(err, kerr.UnknownMemberID) {
			t.Errorf("commit: %v", err)
		}
	}
	await.NoError(t, 45*time.Second, "both members to hold two partitions each and read all 40 records", func() error {
		poll(a)
		poll(b)
		mu.Lock()
		defer mu.Unlock()
		for p := range held[0] {
			if held[1][p] {
				return fmt.Errorf("partition %d held by both members", p)
			}
		}
		if len(seen) != 40 || len(held[0]) != 2 || len(held[1]) != 2 {
			return fmt.Errorf("%d of 40 records read, partitions held %v", len(seen), held)
		}
		return nil
	})
	await.NoError(t, 30*time.Second, "the offsets of all 40 records committed", func() error {
		poll(a)
		poll(b)
		offs, err := adm.FetchOffsets(ctx, "next-gen")
		if err != nil {
			return err
		}
		total := int64(0)
		offs.Each(func(o kadm.OffsetResponse) { total += o.At })
		if total != 40 {
			return fmt.Errorf("committed offsets sum to %d", total)
		}
		return nil
	})

	list := kmsg.NewPtrListGroupsRequest()
	list.TypesFilter = []string{"consumer"}
	lresp, err := list.RequestWith(ctx, newClient(t, addr))
	if err != nil || len(lresp.Groups) != 1 || lresp.Groups[0].Group != "next-gen" || lresp.Groups[0].GroupType != "consumer" {
		t.Fatalf("ListGroups of consumer groups: %+v, %v", lresp, err)
	}
	desc := kmsg.NewPtrConsumerGroupDescribeRequest()
	desc.Groups = []string{"next-gen"}
	dresp, err := desc.RequestWith(ctx, newClient(t, addr))
	if err != nil || len(dresp.Groups) != 1 || dresp.Groups[0].ErrorCode != 0 || len(dresp.Groups[0].Members) != 2 ||
		dresp.Groups[0].AssignorName != "uniform" {
		t.Fatalf("ConsumerGroupDescribe: %+v, %v", dresp, err)
	}
	for _, m := range dresp.Groups[0].Members {
		if len(m.Assignment.TopicPartitions) != 1 || m.Assignment.TopicPartitions[0].Topic != "events" || len(m.Assignment.TopicPartitions[0].Partitions) != 2 {
			t.Errorf("member %s: assignment %+v", m.MemberID, m.Assignment)
		}
	}
	classic := kmsg.NewPtrDescribeGroupsRequest()
	classic.Groups = []string{"next-gen"}
	cresp, err := classic.RequestWith(ctx, newClient(t, addr))
	if err != nil || len(cresp.Groups) != 1 || cresp.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("DescribeGroups of a consumer group: %+v, %v; want GROUP_ID_NOT_FOUND", cresp, err)
	}
	a.Close()
	b.Close()
}
