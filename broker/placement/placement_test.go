package placement

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func brokers(racks ...string) []Broker {
	out := make([]Broker, len(racks))
	for i, r := range racks {
		out[i] = Broker{ID: int32(i + 1), Rack: r}
	}
	return out
}

// Without racks the assignment is the round-robin topics were always
// placed with: partition p's replicas are brokers p, p+1, ... by id.
func TestAssignWithoutRacksIsRoundRobin(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		for rf := 1; rf <= n; rf++ {
			for _, first := range []int32{0, 3, 7} {
				bs := brokers(make([]string, n)...)
				rand.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
				got, err := Assign(bs, first, 10, int32(rf))
				if err != nil {
					t.Fatal(err)
				}
				for i, replicas := range got {
					p := int(first) + i
					want := make([]int32, rf)
					for r := range want {
						want[r] = int32((p+r)%n + 1)
					}
					if !slices.Equal(replicas, want) {
						t.Fatalf("n=%d rf=%d partition %d: got %v, want %v", n, rf, p, replicas, want)
					}
				}
			}
		}
	}
}

// One rack is no racks: every broker is in the same place.
func TestAssignOneRackIsRoundRobin(t *testing.T) {
	same, err := Assign(brokers("a", "a", "a", "a"), 0, 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	none, err := Assign(brokers("", "", "", ""), 0, 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(same, none, slices.Equal) {
		t.Fatalf("one rack %v, no racks %v", same, none)
	}
}

func racksOf(bs []Broker, replicas []int32) map[string]int {
	rack := map[int32]string{}
	for _, b := range bs {
		rack[b.ID] = b.Rack
	}
	out := map[string]int{}
	for _, id := range replicas {
		out[rack[id]]++
	}
	return out
}

func TestAssignSpreadsReplicasAcrossRacks(t *testing.T) {
	cases := []struct {
		name  string
		racks []string
		rf    int32
		// wantRacks is how many racks each partition's replicas span.
		wantRacks int
	}{
		{"three racks of one", []string{"a", "b", "c"}, 3, 3},
		{"three racks of two, ids grouped by rack", []string{"a", "a", "b", "b", "c", "c"}, 3, 3},
		{"three racks of two, rf 2", []string{"c", "b", "a", "c", "b", "a"}, 2, 2},
		{"uneven racks", []string{"a", "a", "a", "b"}, 2, 2},
		{"two racks, rf 3", []string{"a", "b", "a", "b"}, 3, 2},
		{"brokers without a rack count as one", []string{"a", "", "b", ""}, 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bs := brokers(tc.racks...)
			const partitions = 24
			got, err := Assign(bs, 0, partitions, tc.rf)
			if err != nil {
				t.Fatal(err)
			}
			leaders := map[int32]int{}
			for p, replicas := range got {
				if len(replicas) != int(tc.rf) {
					t.Fatalf("partition %d: %v, want %d replicas", p, replicas, tc.rf)
				}
				seen := map[int32]bool{}
				for _, id := range replicas {
					if seen[id] {
						t.Fatalf("partition %d: %v names broker %d twice", p, replicas, id)
					}
					seen[id] = true
				}
				perRack := racksOf(bs, replicas)
				if len(perRack) != tc.wantRacks {
					t.Fatalf("partition %d: %v spans racks %v, want %d racks", p, replicas, perRack, tc.wantRacks)
				}
				// No rack holds two replicas while another that could hold
				// one holds none.
				lo, hi := int(tc.rf), 0
				for _, n := range perRack {
					lo, hi = min(lo, n), max(hi, n)
				}
				if hi-lo > 1 && len(perRack) == len(racksOf(bs, idsOf(bs))) {
					t.Fatalf("partition %d: %v spreads unevenly over racks %v", p, replicas, perRack)
				}
				leaders[replicas[0]]++
			}
			for _, b := range bs {
				if want := partitions / len(bs); leaders[b.ID] != want {
					t.Fatalf("broker %d leads %d partitions, want %d (leaders %v)", b.ID, leaders[b.ID], want, leaders)
				}
			}
		})
	}
}

func idsOf(bs []Broker) []int32 {
	out := make([]int32, len(bs))
	for i, b := range bs {
		out[i] = b.ID
	}
	return out
}

// With racks of equal size, every broker holds the same number of replicas.
func TestAssignBalancesReplicasOverEqualRacks(t *testing.T) {
	bs := brokers("a", "b", "c", "a", "b", "c")
	got, err := Assign(bs, 0, 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int32]int{}
	for _, replicas := range got {
		for _, id := range replicas {
			count[id]++
		}
	}
	for _, b := range bs {
		if count[b.ID] != 6 {
			t.Fatalf("replicas per broker %v, want 6 each", count)
		}
	}
}

// Partitions added later continue the pattern: assigning 0..9 at once or
// 0..3 then 4..9 gives the same lists.
func TestAssignContinuesFromFirst(t *testing.T) {
	bs := brokers("a", "b", "c", "a", "b")
	all, err := Assign(bs, 0, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	head, err := Assign(bs, 0, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := Assign(bs, 4, 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	if joined := append(head, tail...); !slices.EqualFunc(all, joined, slices.Equal) {
		t.Fatalf("at once %v, in two steps %v", all, joined)
	}
}

func TestAssignRefusesReplicationFactorOutOfRange(t *testing.T) {
	for _, rf := range []int32{0, -1, 4} {
		if _, err := Assign(brokers("a", "b", "c"), 0, 1, rf); !errors.Is(err, ErrReplicationFactor) {
			t.Fatalf("rf %d: err %v, want ErrReplicationFactor", rf, err)
		}
	}
}

func TestAssignLeavesInputAlone(t *testing.T) {
	bs := []Broker{{3, "b"}, {1, "a"}, {2, "b"}}
	before := slices.Clone(bs)
	if _, err := Assign(bs, 0, 3, 2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bs, before) {
		t.Fatalf("input changed to %v", bs)
	}
}

func TestRackAlternated(t *testing.T) {
	got := RackAlternated([]Broker{{6, "c"}, {1, "a"}, {4, "b"}, {2, "a"}, {3, "b"}, {5, "a"}})
	want := []Broker{{1, "a"}, {3, "b"}, {6, "c"}, {2, "a"}, {4, "b"}, {5, "a"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
