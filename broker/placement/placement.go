// Package placement decides which brokers hold a partition's replicas.
//
// Assign is Kafka's rack-aware replica assignment: the brokers are arranged
// in a list that alternates racks (the first broker of each rack, then the
// second of each, ...), partition p's leader is the list's (p mod n)th
// broker, so leaders spread evenly, and its followers are the next brokers
// along the list whose rack holds no replica of the partition yet; once
// every rack holds one, the racks are counted afresh. Each partition's
// replicas so land in as many racks as there are, or as the replication
// factor allows, and no rack holds two before every rack holds one.
//
// Brokers without a rack count as one more rack (named ""), as Kafka's
// KRaft placement treats them, rather than being refused as the older
// ZooKeeper-era tool did: a cluster that is given broker.rack one broker at
// a time keeps creating topics meanwhile. With no racks at all (or one), the
// list is the brokers by node id and the assignment is plain round-robin:
// partition p's replicas are brokers p, p+1, ... (mod n) of that order.
//
// The functions are pure: callers (topic creation, new partitions, a
// rebalance planner) pass the live brokers and get replica lists back.
package placement

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Broker is a broker as placement sees it.
type Broker struct {
	ID   int32
	Rack string // empty: none
}

// ErrReplicationFactor is returned when the replication factor is below one
// or above the number of brokers.
var ErrReplicationFactor = errors.New("placement: replication factor out of range")

// Assign returns the replica lists (leader first) of partitions first,
// first+1, ..., first+count-1 of a topic with replication factor rf, placed
// on brokers. Partitions added to a topic pass first = its current count, so
// they continue its pattern. brokers need not be sorted and is not modified.
func Assign(brokers []Broker, first, count, rf int32) ([][]int32, error) {
	if rf < 1 || int(rf) > len(brokers) {
		return nil, fmt.Errorf("%w: %d with %d broker(s)", ErrReplicationFactor, rf, len(brokers))
	}
	if first < 0 || count < 0 {
		return nil, fmt.Errorf("placement: partitions from %d, count %d: must not be negative", first, count)
	}
	list := RackAlternated(brokers)
	racks := 0
	seen := map[string]bool{}
	for _, b := range list {
		if !seen[b.Rack] {
			seen[b.Rack] = true
			racks++
		}
	}
	n := len(list)
	out := make([][]int32, count)
	for i := range out {
		p := int(first) + i
		lead := p % n
		replicas := make([]int32, 0, rf)
		usedRack := map[string]bool{}
		used := make([]bool, n)
		take := func(j int) {
			replicas = append(replicas, list[j].ID)
			used[j] = true
			usedRack[list[j].Rack] = true
		}
		take(lead)
		for len(replicas) < int(rf) {
			if len(usedRack) == racks {
				// Every rack holds a replica: the next ones spread over the
				// racks again.
				clear(usedRack)
			}
			next := -1
			for k := 1; k < n; k++ {
				j := (lead + k) % n
				if used[j] {
					continue
				}
				if !usedRack[list[j].Rack] {
					next = j
					break
				}
				if next < 0 {
					next = j // the fallback when every free broker's rack is taken
				}
			}
			take(next)
		}
		out[i] = replicas
	}
	return out, nil
}

// RackAlternated returns brokers arranged as Assign walks them: racks in
// name order, brokers within a rack by id, taken one from each rack in
// turn. With a single rack (or none) it is the brokers sorted by id.
func RackAlternated(brokers []Broker) []Broker {
	byRack := map[string][]Broker{}
	for _, b := range brokers {
		byRack[b.Rack] = append(byRack[b.Rack], b)
	}
	names := make([]string, 0, len(byRack))
	for r, bs := range byRack {
		names = append(names, r)
		slices.SortFunc(bs, func(a, b Broker) int { return cmp.Compare(a.ID, b.ID) })
	}
	slices.Sort(names)
	out := make([]Broker, 0, len(brokers))
	for round := 0; len(out) < len(brokers); round++ {
		for _, r := range names {
			if bs := byRack[r]; round < len(bs) {
				out = append(out, bs[round])
			}
		}
	}
	return out
}
