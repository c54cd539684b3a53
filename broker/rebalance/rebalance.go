// Package rebalance plans partition moves that spread a cluster's load
// evenly over its live brokers, or empty brokers to be retired: Kafka's
// kafka-reassign-partitions --generate and Cruise Control's goals, reduced
// to what an operator asks for when a broker joins or leaves.
//
// A plan is computed from a snapshot (brokers, partitions and their sizes)
// and is pure: the same input gives the same plan, and nothing is read or
// written here. Its goals, in priority order:
//
//   - drained brokers hold no replica (and so lead nothing);
//   - no partition's rack spread (the number of distinct racks among its
//     replicas) gets worse, and a partition whose replicas share a rack
//     while another rack has room is spread;
//   - replicas per broker even, within one;
//   - replica bytes per broker as even as swapping replicas allows (within
//     a tenth of the mean and 64 MiB: closer is not worth a move);
//   - preferred leaders (first replicas) per broker even, within one, by
//     reordering replica lists, which moves no data.
//
// Moves are few: a replica stays where it is unless a goal needs it
// elsewhere, the most loaded broker gives to the least loaded first, and
// a partition already moving is never touched, nor one with a replica on a
// broker that is not live (its move could not complete) unless a drain
// needs it. Replication factors are
// kept.
package rebalance

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Broker is a live broker a plan may place replicas on.
type Broker struct {
	ID int32
	// Rack is its broker.rack; brokers without one share a rack.
	Rack string
}

// Partition is one partition as it is now.
type Partition struct {
	Topic     string
	Partition int32
	// Replicas, the preferred leader first; a partition moving gives its
	// target (without the replicas leaving), which the plan keeps.
	Replicas []int32
	// Leader is the current leader, -1 for none.
	Leader int32
	// Size is the bytes of one replica's log: what a move copies.
	Size int64
	// Moving is set while a reassignment of the partition is in progress.
	Moving bool
}

// Goal is what the plan is for: evening out the live brokers, or also
// emptying some of them.
type Goal struct {
	// Drain lists brokers to empty: every replica moves off them and they
	// receive none.
	Drain []int32
}

// Move is one partition's change: From its replicas now To the target
// (preferred leader first). A move may only reorder the replicas, which
// changes the preferred leader and copies nothing.
type Move struct {
	Topic     string
	Partition int32
	From, To  []int32
}

// Load is one broker's share: replicas, leaders and replica bytes.
type Load struct {
	ID       int32
	Replicas int
	Leaders  int
	Bytes    int64
}

// Plan is the moves (in topic and partition order) and each broker's load
// before and after them, in broker order. Before counts current leaders;
// after counts preferred ones, as a preferred leader election run once the
// moves are done makes them leaders.
type Plan struct {
	Moves         []Move
	Before, After []Load
}

// ErrCannotDrain: the brokers left cannot hold a partition's replicas.
var ErrCannotDrain = errors.New("cannot drain")

// ErrMoving: a drained broker holds a replica of a partition whose move is
// still in progress.
var ErrMoving = errors.New("partition is moving")

// bytesSlack is the share of the mean bytes per broker under which a bytes
// imbalance is left alone: swapping replicas to get closer moves data for
// little gain.
const bytesSlack = 10

// minBytesGap is the smallest gap in bytes between two brokers that a swap
// is made for: below it, a swap's two moves cost more than the evenness
// gains (a small cluster would otherwise trade kilobytes back and forth).
const minBytesGap = 64 << 20

type part struct {
	Partition
	target []int32
	// offline: a replica is on a broker that is not live. Such a partition
	// is moved only to drain a broker: a move completes once every target
	// replica is in the ISR, which a dead broker never joins.
	offline bool
}

type planner struct {
	parts    []*part
	eligible []int32 // brokers that may hold replicas, in id order
	isElig   map[int32]bool
	rack     map[int32]string
	count    map[int32]int
	bytes    map[int32]int64
	lead     map[int32]int
}

// Compute plans the moves for goal. It fails with ErrCannotDrain when too
// few brokers are left for a drained partition's replication factor (or
// its racks cannot be kept), and with ErrMoving when a drained broker
// holds a partition that is moving.
func Compute(brokers []Broker, parts []Partition, goal Goal) (Plan, error) {
	p := &planner{isElig: map[int32]bool{}, rack: map[int32]string{}, count: map[int32]int{}, bytes: map[int32]int64{}, lead: map[int32]int{}}
	for _, b := range brokers {
		p.rack[b.ID] = b.Rack
		if !slices.Contains(goal.Drain, b.ID) {
			p.eligible = append(p.eligible, b.ID)
			p.isElig[b.ID] = true
		}
	}
	slices.Sort(p.eligible)
	for _, in := range parts {
		pp := &part{Partition: in, target: slices.Clone(in.Replicas)}
		pp.Replicas = slices.Clone(in.Replicas)
		// p.rack holds every live broker.
		pp.offline = slices.ContainsFunc(in.Replicas, func(id int32) bool { _, live := p.rack[id]; return !live })
		p.parts = append(p.parts, pp)
	}
	slices.SortFunc(p.parts, func(a, b *part) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition.Partition, b.Partition.Partition))
	})
	before := p.loads(brokers, goal, false)
	p.recount()
	if err := p.drain(goal.Drain); err != nil {
		return Plan{}, err
	}
	p.spreadRacks()
	p.evenReplicas()
	p.evenBytes()
	p.evenLeaders()
	plan := Plan{Before: before, After: p.loads(brokers, goal, true)}
	for _, pp := range p.parts {
		if !slices.Equal(pp.Replicas, pp.target) {
			plan.Moves = append(plan.Moves, Move{Topic: pp.Topic, Partition: pp.Partition.Partition, From: pp.Replicas, To: pp.target})
		}
	}
	return plan, nil
}

// loads reports each broker's load, current or planned, for the live
// brokers and any drained one.
func (p *planner) loads(brokers []Broker, goal Goal, planned bool) []Load {
	byID := map[int32]*Load{}
	for _, b := range brokers {
		byID[b.ID] = &Load{ID: b.ID}
	}
	for _, id := range goal.Drain {
		if byID[id] == nil {
			byID[id] = &Load{ID: id}
		}
	}
	for _, pp := range p.parts {
		reps, leader := pp.Replicas, pp.Leader
		if planned {
			reps, leader = pp.target, -1
			if len(pp.target) > 0 {
				leader = pp.target[0]
			}
		}
		for _, id := range reps {
			if l := byID[id]; l != nil {
				l.Replicas++
				l.Bytes += pp.Size
			}
		}
		if l := byID[leader]; l != nil {
			l.Leaders++
		}
	}
	out := make([]Load, 0, len(byID))
	for _, l := range byID {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Load) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// recount sets the eligible brokers' planned replicas, bytes and preferred
// leaderships.
func (p *planner) recount() {
	clear(p.count)
	clear(p.bytes)
	clear(p.lead)
	for _, id := range p.eligible {
		p.count[id], p.bytes[id], p.lead[id] = 0, 0, 0
	}
	for _, pp := range p.parts {
		for _, id := range pp.target {
			if p.isElig[id] {
				p.count[id]++
				p.bytes[id] += pp.Size
			}
		}
		if len(pp.target) > 0 && p.isElig[pp.target[0]] {
			p.lead[pp.target[0]]++
		}
	}
}

// rackOf is a broker's rack. Live brokers without broker.rack share one
// rack, as new topics' placement (broker/placement) counts them; a broker
// that is not live is a rack of its own.
func (p *planner) rackOf(id int32) string {
	if r, ok := p.rack[id]; ok {
		return "rack:" + r
	}
	return fmt.Sprintf("broker:%d", id)
}

func (p *planner) spread(replicas []int32) int {
	seen := map[string]bool{}
	for _, id := range replicas {
		seen[p.rackOf(id)] = true
	}
	return len(seen)
}

// replaced is replicas with from replaced by to, in from's place.
func replaced(replicas []int32, from, to int32) []int32 {
	out := slices.Clone(replicas)
	out[slices.Index(out, from)] = to
	return out
}

// canMove says whether pp's replica on from may move to to: to may hold
// replicas and does not yet, and the rack spread does not get worse.
func (p *planner) canMove(pp *part, from, to int32) bool {
	if pp.Moving || pp.offline || !p.isElig[to] || slices.Contains(pp.target, to) || !slices.Contains(pp.target, from) {
		return false
	}
	return p.spread(replaced(pp.target, from, to)) >= p.spread(pp.target)
}

func (p *planner) move(pp *part, from, to int32) {
	pp.target = replaced(pp.target, from, to)
	p.count[from]--
	p.bytes[from] -= pp.Size
	p.count[to]++
	p.bytes[to] += pp.Size
	if pp.target[0] == to {
		p.lead[from]--
		p.lead[to]++
	}
}

// drain moves every replica off the drained brokers, largest partitions
// first so that the small ones even out the bytes, each to the broker
// that keeps the most rack spread and holds the fewest replicas and bytes.
func (p *planner) drain(drained []int32) error {
	order := slices.Clone(p.parts)
	slices.SortStableFunc(order, func(a, b *part) int { return cmp.Compare(b.Size, a.Size) })
	for _, pp := range order {
		for _, from := range drained {
			if !slices.Contains(pp.target, from) {
				continue
			}
			name := fmt.Sprintf("%s-%d", pp.Topic, pp.Partition.Partition)
			if pp.Moving {
				return fmt.Errorf("%w: %s has a replica on broker %d and a move in progress; wait for it to complete", ErrMoving, name, from)
			}
			best, bestSpread := int32(-1), 0
			for _, to := range p.eligible {
				if slices.Contains(pp.target, to) {
					continue
				}
				s := p.spread(replaced(pp.target, from, to))
				if best < 0 || s > bestSpread || (s == bestSpread && p.lighter(to, best)) {
					best, bestSpread = to, s
				}
			}
			if best < 0 {
				return fmt.Errorf("%w: %s has %d replicas and only %d brokers would be left", ErrCannotDrain, name, len(pp.target), len(p.eligible))
			}
			p.move(pp, from, best)
		}
	}
	return nil
}

// lighter orders brokers by replicas, then bytes, then id.
func (p *planner) lighter(a, b int32) bool {
	return cmp.Or(cmp.Compare(p.count[a], p.count[b]), cmp.Compare(p.bytes[a], p.bytes[b]), cmp.Compare(a, b)) < 0
}

// spreadRacks moves a replica that shares its rack with another replica
// of its partition to a rack the partition does not use yet, where the
// eligible brokers have one.
func (p *planner) spreadRacks() {
	racks := map[string]bool{}
	for _, id := range p.eligible {
		racks[p.rackOf(id)] = true
	}
	for _, pp := range p.parts {
		for !pp.Moving && !pp.offline && p.spread(pp.target) < min(len(pp.target), len(racks)) {
			from, to := p.rackFix(pp)
			if from < 0 {
				break
			}
			p.move(pp, from, to)
		}
	}
}

// rackFix picks a replica of pp in a rack used twice (the one on the
// heaviest broker) and the lightest eligible broker in an unused rack.
func (p *planner) rackFix(pp *part) (from, to int32) {
	used := map[string]int{}
	for _, id := range pp.target {
		used[p.rackOf(id)]++
	}
	from, to = -1, -1
	for _, id := range pp.target {
		if used[p.rackOf(id)] > 1 && (from < 0 || p.lighter(from, id)) {
			from = id
		}
	}
	for _, id := range p.eligible {
		if used[p.rackOf(id)] == 0 && (to < 0 || p.lighter(id, to)) {
			to = id
		}
	}
	if from < 0 || to < 0 {
		return -1, -1
	}
	return from, to
}

// byLoad is the eligible brokers from the most to the least loaded by key.
func (p *planner) byLoad(key func(int32) int64) []int32 {
	ids := slices.Clone(p.eligible)
	slices.SortStableFunc(ids, func(a, b int32) int { return cmp.Compare(key(b), key(a)) })
	return ids
}

// evenReplicas moves replicas from the broker with the most to the one
// with the fewest until they are within one, choosing each time the
// replica whose bytes bring the two brokers' bytes closest.
func (p *planner) evenReplicas() {
	for range len(p.parts) * 4 {
		ids := p.byLoad(func(id int32) int64 { return int64(p.count[id])*(1<<40) + p.bytes[id] })
		if len(ids) < 2 || p.count[ids[0]]-p.count[ids[len(ids)-1]] <= 1 {
			return
		}
		moved := false
		for _, h := range ids {
			for _, l := range slices.Backward(ids) {
				if p.count[h]-p.count[l] <= 1 {
					break
				}
				if pp := p.bestMove(h, l); pp != nil {
					p.move(pp, h, l)
					moved = true
					break
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			return
		}
	}
}

// bestMove picks the partition whose replica on h moving to l leaves the
// two brokers' bytes closest; a partition h is not the preferred leader
// of wins a tie, so leaderships move less.
func (p *planner) bestMove(h, l int32) *part {
	var best *part
	var bestGap int64
	for _, pp := range p.parts {
		if !p.canMove(pp, h, l) {
			continue
		}
		gap := abs((p.bytes[h] - pp.Size) - (p.bytes[l] + pp.Size))
		if best == nil || gap < bestGap || (gap == bestGap && best.target[0] == h && pp.target[0] != h) {
			best, bestGap = pp, gap
		}
	}
	return best
}

// evenBytes swaps a large replica of the broker with the most bytes for a
// smaller one of the broker with the fewest, keeping replica counts, while
// the gap between them is over a tenth of the mean (and over minBytesGap)
// and a swap narrows it.
func (p *planner) evenBytes() {
	if len(p.eligible) < 2 {
		return
	}
	for range len(p.parts) {
		var total int64
		for _, id := range p.eligible {
			total += p.bytes[id]
		}
		slack := max(total/int64(len(p.eligible))/bytesSlack, minBytesGap)
		ids := p.byLoad(func(id int32) int64 { return p.bytes[id] })
		h, l := ids[0], ids[len(ids)-1]
		gap := p.bytes[h] - p.bytes[l]
		if gap <= slack {
			return
		}
		var onH, onL []*part
		for _, pp := range p.parts {
			if p.canMove(pp, h, l) {
				onH = append(onH, pp)
			}
			if p.canMove(pp, l, h) {
				onL = append(onL, pp)
			}
		}
		var bestP, bestQ *part
		bestGap := gap
		for _, pp := range onH {
			for _, qq := range onL {
				if qq.Size >= pp.Size {
					continue
				}
				if g := abs(gap - 2*(pp.Size-qq.Size)); g < bestGap {
					bestP, bestQ, bestGap = pp, qq, g
				}
			}
		}
		if bestP == nil {
			return
		}
		p.move(bestP, h, l)
		p.move(bestQ, l, h)
	}
}

// evenLeaders makes the broker with the fewest preferred leaderships the
// preferred leader of a partition led by the one with the most, where it
// already is a replica, until they are within one. Partitions the plan
// already changes are reordered first, so fewer partitions are touched.
func (p *planner) evenLeaders() {
	for range len(p.parts) * 2 {
		ids := p.byLoad(func(id int32) int64 { return int64(p.lead[id]) })
		if len(ids) < 2 || p.lead[ids[0]]-p.lead[ids[len(ids)-1]] <= 1 {
			return
		}
		moved := false
		for _, h := range ids {
			for _, l := range slices.Backward(ids) {
				if p.lead[h]-p.lead[l] <= 1 {
					break
				}
				if pp := p.bestReorder(h, l); pp != nil {
					i := slices.Index(pp.target, l)
					pp.target[0], pp.target[i] = l, h
					p.lead[h]--
					p.lead[l]++
					moved = true
					break
				}
			}
			if moved {
				break
			}
		}
		if !moved {
			return
		}
	}
}

// bestReorder picks a partition preferring h as leader with l among its
// replicas: one the plan already changes, else one l leads now (its
// leader stays), else the first.
func (p *planner) bestReorder(h, l int32) *part {
	var best *part
	score := func(pp *part) int {
		switch {
		case !slices.Equal(pp.target, pp.Replicas):
			return 2
		case pp.Leader == l:
			return 1
		}
		return 0
	}
	for _, pp := range p.parts {
		if pp.Moving || len(pp.target) == 0 || pp.target[0] != h || !slices.Contains(pp.target, l) {
			continue
		}
		if best == nil || score(pp) > score(best) {
			best = pp
		}
	}
	return best
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
