package sharegroup

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/strata-broker/strata/metastore"
)

func tp(topic string, p int32) metastore.TopicPartition {
	return metastore.TopicPartition{Topic: topic, Partition: p}
}

func TestAssignBalancesAndCoversEveryPartition(t *testing.T) {
	for _, c := range []struct {
		members, partitions int
	}{{1, 1}, {1, 6}, {2, 6}, {4, 6}, {6, 6}, {7, 3}, {10, 1}, {3, 10}} {
		t.Run(fmt.Sprintf("%dm%dp", c.members, c.partitions), func(t *testing.T) {
			var subs []Subscription
			for i := range c.members {
				subs = append(subs, Subscription{MemberID: fmt.Sprintf("m%02d", i), Topics: []string{"t"}})
			}
			got := Assign(subs, map[string]int32{"t": int32(c.partitions)})
			owners := map[int32]int{}
			minN, maxN := 1<<30, 0
			for _, s := range subs {
				n := len(got[s.MemberID])
				minN, maxN = min(minN, n), max(maxN, n)
				for _, a := range got[s.MemberID] {
					owners[a.Partition]++
				}
			}
			if len(owners) != c.partitions {
				t.Fatalf("partitions assigned: %v, want all %d", owners, c.partitions)
			}
			if maxN-minN > 1 || minN == 0 {
				t.Fatalf("members hold %d to %d partitions: %v", minN, maxN, got)
			}
			minO, maxO := 1<<30, 0
			for _, n := range owners {
				minO, maxO = min(minO, n), max(maxO, n)
			}
			if maxO-minO > 1 {
				t.Fatalf("partitions shared by %d to %d members: %v", minO, maxO, owners)
			}
			if again := Assign(subs, map[string]int32{"t": int32(c.partitions)}); !reflect.DeepEqual(again, got) {
				t.Fatalf("not deterministic: %v then %v", got, again)
			}
		})
	}
}

func TestAssignHeterogeneousSubscriptions(t *testing.T) {
	got := Assign([]Subscription{
		{MemberID: "b", Topics: []string{"x", "y"}},
		{MemberID: "a", Topics: []string{"x", "missing"}},
	}, map[string]int32{"x": 2, "y": 2})
	want := map[string][]metastore.TopicPartition{
		"a": {tp("x", 0)},
		"b": {tp("x", 1), tp("y", 0), tp("y", 1)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Assign = %v, want %v", got, want)
	}
}
