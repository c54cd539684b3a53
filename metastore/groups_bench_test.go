package metastore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCommitOffsets measures offset commits of 10 partitions each (one
// transaction) from 64 concurrent committers against the test etcd, the
// pattern of many consumers committing their few partitions: ops/s is
// commit transactions per second; multiply by 10 for keys written.
func BenchmarkCommitOffsets(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, testEndpoints, "/bench/commits", testLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchCommits(b, s)
}

func benchCommits(b *testing.B, s *Store) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := fmt.Sprintf("bench-%d", w)
			offs := make([]OffsetCommit, 10)
			for next.Add(1) <= int64(b.N) {
				for p := range offs {
					offs[p] = OffsetCommit{Topic: "t", Partition: int32(p), Offset: next.Load(), LeaderEpoch: -1, CommitTime: time.Now()}
				}
				if err := s.CommitOffsets(ctx, group, "", -1, offs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
