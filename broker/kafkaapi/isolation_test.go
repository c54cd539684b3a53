package kafkaapi

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/partlog"
)

// isolationCore answers fetches as a partition at high watermark 10 whose
// transaction from offset 6 is open, and which aborted producer 7's
// transaction from offset 2 (marker at 5).
type isolationCore struct{ nullCore }

func (isolationCore) Fetch(_ context.Context, parts []broker.FetchPartition, opts broker.FetchOptions) ([]broker.FetchResult, error) {
	out := make([]broker.FetchResult, len(parts))
	for i, p := range parts {
		out[i] = broker.FetchResult{Topic: p.Topic, Partition: p.Partition, HighWatermark: 10, LastStableOffset: 6,
			NextOffset: p.Offset, PreferredReadReplica: -1}
		if opts.IsolationLevel == broker.ReadCommitted {
			out[i].Aborted = []partlog.AbortedTxn{{ProducerID: 7, FirstOffset: 2, LastOffset: 5, LastStableOffset: 6}}
		}
	}
	return out, nil
}

func (isolationCore) ListOffsetsAt(_ context.Context, _ string, _, _ int32, ts int64, iso broker.IsolationLevel) (broker.ListedOffset, error) {
	if ts == broker.LatestTimestamp && iso == broker.ReadCommitted {
		return broker.ListedOffset{Offset: 6, Timestamp: -1, LeaderEpoch: -1, Found: true}, nil
	}
	return broker.ListedOffset{Offset: 10, Timestamp: -1, LeaderEpoch: -1, Found: true}, nil
}

func serveCore(t *testing.T, core Core) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(core, Config{NodeID: 1})
	go s.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return lis.Addr().String()
}

// Fetch passes the isolation level to the core and answers with its last
// stable offset and, for read_committed only, its aborted transactions
// (null otherwise, as Kafka); ListOffsets passes it from v2 on.
func TestFetchCarriesIsolationLevelAndAbortedTransactions(t *testing.T) {
	addr := serveCore(t, isolationCore{})
	for _, v := range []int16{4, 11, 12} {
		for _, iso := range []int8{0, 1} {
			req := kmsg.NewPtrFetchRequest()
			req.IsolationLevel = iso
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = "t"
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.FetchOffset = 0
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			body, err := roundTrip(t, addr, req, v)
			if err != nil {
				t.Fatal(err)
			}
			if v >= 12 {
				body = body[1:] // the flexible header's tags
			}
			resp := kmsg.NewPtrFetchResponse()
			resp.SetVersion(v)
			if err := resp.ReadFrom(body); err != nil {
				t.Fatalf("v%d: %v", v, err)
			}
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || p.HighWatermark != 10 || p.LastStableOffset != 6 {
				t.Fatalf("v%d isolation %d: error %d, high watermark %d, last stable offset %d; want 0, 10, 6",
					v, iso, p.ErrorCode, p.HighWatermark, p.LastStableOffset)
			}
			want := []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 7, FirstOffset: 2}}
			switch {
			case iso == 1 && !slices.EqualFunc(p.AbortedTransactions, want, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) bool {
				return a.ProducerID == b.ProducerID && a.FirstOffset == b.FirstOffset
			}):
				t.Fatalf("v%d read_committed: aborted %+v, want %+v", v, p.AbortedTransactions, want)
			case iso == 0 && p.AbortedTransactions != nil:
				t.Fatalf("v%d read_uncommitted: aborted %+v, want null", v, p.AbortedTransactions)
			}
		}
	}

	for _, c := range []struct {
		v    int16
		iso  int8
		want int64
	}{{1, 1, 10}, {2, 0, 10}, {2, 1, 6}, {6, 1, 6}} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = c.iso
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		body, err := roundTrip(t, addr, req, c.v)
		if err != nil {
			t.Fatal(err)
		}
		if c.v >= 6 {
			body = body[1:]
		}
		resp := kmsg.NewPtrListOffsetsResponse()
		resp.SetVersion(c.v)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		if got := resp.Topics[0].Partitions[0].Offset; got != c.want {
			t.Fatalf("ListOffsets v%d isolation %d: latest %d, want %d", c.v, c.iso, got, c.want)
		}
	}
}
