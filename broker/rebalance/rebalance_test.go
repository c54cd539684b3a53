package rebalance

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func brokers(ids ...int32) []Broker {
	out := make([]Broker, 0, len(ids))
	for _, id := range ids {
		out = append(out, Broker{ID: id})
	}
	return out
}

// spreadOut places n partitions of topic t with rf replicas round-robin
// over ids, led by their first replica, each size bytes.
func spreadOut(n, rf int, size int64, ids ...int32) []Partition {
	var out []Partition
	for i := range n {
		var reps []int32
		for j := range rf {
			reps = append(reps, ids[(i+j)%len(ids)])
		}
		out = append(out, Partition{Topic: "t", Partition: int32(i), Replicas: reps, Leader: reps[0], Size: size})
	}
	return out
}

// apply returns parts with the plan's targets.
func apply(parts []Partition, plan Plan) []Partition {
	out := slices.Clone(parts)
	for _, m := range plan.Moves {
		for i := range out {
			if out[i].Topic == m.Topic && out[i].Partition == m.Partition {
				out[i].Replicas = m.To
				out[i].Leader = m.To[0]
			}
		}
	}
	return out
}

// check holds every plan to the rules that do not depend on the goal:
// the replication factor is kept, replicas are distinct, a moving
// partition is not touched, From is the partition as it was, and no rack
// spread gets worse. It returns the replicas that change brokers.
func check(t *testing.T, bs []Broker, parts []Partition, plan Plan) (moved int) {
	t.Helper()
	rack := map[int32]string{}
	for _, b := range bs {
		rack[b.ID] = b.Rack
	}
	spread := func(reps []int32) int {
		seen := map[string]bool{}
		for _, id := range reps {
			r := rack[id]
			if r == "" {
				r = fmt.Sprint(id)
			}
			seen[r] = true
		}
		return len(seen)
	}
	for _, m := range plan.Moves {
		i := slices.IndexFunc(parts, func(p Partition) bool { return p.Topic == m.Topic && p.Partition == m.Partition })
		if i < 0 {
			t.Fatalf("move of unknown partition %s-%d", m.Topic, m.Partition)
		}
		p := parts[i]
		switch {
		case p.Moving:
			t.Errorf("%s-%d is moving, yet the plan moves it: %v", m.Topic, m.Partition, m.To)
		case !slices.Equal(m.From, p.Replicas):
			t.Errorf("%s-%d: From %v, want %v", m.Topic, m.Partition, m.From, p.Replicas)
		case len(m.To) != len(p.Replicas):
			t.Errorf("%s-%d: replication factor %d → %d", m.Topic, m.Partition, len(p.Replicas), len(m.To))
		case spread(m.To) < spread(p.Replicas):
			t.Errorf("%s-%d: rack spread of %v worse than %v", m.Topic, m.Partition, m.To, p.Replicas)
		}
		for j, id := range m.To {
			if slices.Contains(m.To[j+1:], id) {
				t.Errorf("%s-%d: replica %d twice in %v", m.Topic, m.Partition, id, m.To)
			}
			if !slices.Contains(p.Replicas, id) {
				moved++
			}
		}
	}
	return moved
}

func loadOf(t *testing.T, loads []Load, id int32) Load {
	t.Helper()
	for _, l := range loads {
		if l.ID == id {
			return l
		}
	}
	t.Fatalf("no load for broker %d in %+v", id, loads)
	return Load{}
}

// within checks that every listed broker's replicas and leaders are within
// one of each other.
func within(t *testing.T, loads []Load, ids ...int32) {
	t.Helper()
	var reps, leads []int
	for _, id := range ids {
		l := loadOf(t, loads, id)
		reps, leads = append(reps, l.Replicas), append(leads, l.Leaders)
	}
	if slices.Max(reps)-slices.Min(reps) > 1 || slices.Max(leads)-slices.Min(leads) > 1 {
		t.Errorf("uneven after the plan: %+v", loads)
	}
}

func TestBalancedStaysUnchanged(t *testing.T) {
	bs := brokers(1, 2, 3)
	for _, parts := range [][]Partition{
		spreadOut(6, 3, 100, 1, 2, 3),
		spreadOut(7, 2, 100, 1, 2, 3), // off by one is balanced too
	} {
		plan, err := Compute(bs, parts, Goal{})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Moves) != 0 {
			t.Errorf("a balanced cluster gets moves: %+v", plan.Moves)
		}
		if !slices.Equal(plan.Before, plan.After) {
			t.Errorf("loads change without moves: %+v → %+v", plan.Before, plan.After)
		}
	}
}

func TestNewBrokerReceivesItsShare(t *testing.T) {
	bs := brokers(1, 2, 3, 4)
	parts := spreadOut(12, 2, 1000, 1, 2, 3) // 24 replicas, 12 leaders on 1-3
	plan, err := Compute(bs, parts, Goal{})
	if err != nil {
		t.Fatal(err)
	}
	moved := check(t, bs, parts, plan)
	within(t, plan.After, 1, 2, 3, 4)
	if l := loadOf(t, plan.After, 4); l.Replicas != 6 || l.Leaders != 3 || l.Bytes != 6000 {
		t.Errorf("broker 4 after the plan: %+v, want 6 replicas, 3 leaders, 6000 bytes", l)
	}
	// A quarter of the replicas is the least that evens them out.
	if moved != 6 {
		t.Errorf("%d replicas change brokers, want 6: %+v", moved, plan.Moves)
	}
	// Planning again from the result finds nothing to do.
	again, err := Compute(bs, apply(parts, plan), Goal{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Moves) != 0 {
		t.Errorf("a second plan moves again: %+v", again.Moves)
	}
}

func TestDrainEmptiesTheBroker(t *testing.T) {
	bs := brokers(1, 2, 3, 4)
	parts := spreadOut(12, 3, 10, 1, 2, 3, 4)
	plan, err := Compute(bs, parts, Goal{Drain: []int32{1}})
	if err != nil {
		t.Fatal(err)
	}
	moved := check(t, bs, parts, plan)
	if l := loadOf(t, plan.After, 1); l.Replicas != 0 || l.Leaders != 0 || l.Bytes != 0 {
		t.Errorf("broker 1 after draining it: %+v", l)
	}
	within(t, plan.After, 2, 3, 4)
	if moved != 9 { // broker 1's 9 replicas, nothing else
		t.Errorf("%d replicas change brokers, want 9: %+v", moved, plan.Moves)
	}
}

func TestDrainRefusedWhenTheRestCannotHoldTheReplicas(t *testing.T) {
	parts := spreadOut(3, 3, 10, 1, 2, 3)
	if _, err := Compute(brokers(1, 2, 3), parts, Goal{Drain: []int32{1}}); !errors.Is(err, ErrCannotDrain) {
		t.Errorf("drain of one of three brokers under RF 3: %v, want ErrCannotDrain", err)
	}
	parts = spreadOut(4, 2, 10, 1, 2, 3)
	parts[0].Moving = true // on 1 and 2
	if _, err := Compute(brokers(1, 2, 3), parts, Goal{Drain: []int32{1}}); !errors.Is(err, ErrMoving) {
		t.Errorf("drain of a broker holding a moving partition: %v, want ErrMoving", err)
	}
}

func TestMovingPartitionsStayPut(t *testing.T) {
	bs := brokers(1, 2, 3, 4)
	parts := spreadOut(12, 2, 1000, 1, 2, 3)
	for i := range 6 {
		parts[i].Moving = true
	}
	plan, err := Compute(bs, parts, Goal{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, bs, parts, plan)
	if loadOf(t, plan.After, 4).Replicas == 0 {
		t.Errorf("broker 4 gets nothing from the partitions that are not moving: %+v", plan.Moves)
	}
}

func TestRacksAreSpreadAndNeverNarrowed(t *testing.T) {
	bs := []Broker{{1, "a"}, {2, "a"}, {3, "b"}, {4, "b"}, {5, "c"}}
	parts := spreadOut(10, 2, 100, 1, 3, 2, 4) // pairs (1,3) (3,2) (2,4) (4,1): every pair spans a and b
	parts = append(parts, Partition{Topic: "u", Partition: 0, Replicas: []int32{1, 2}, Leader: 1, Size: 100})
	plan, err := Compute(bs, parts, Goal{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, bs, parts, plan)
	rack := map[int32]string{1: "a", 2: "a", 3: "b", 4: "b", 5: "c"}
	for _, p := range apply(parts, plan) {
		if rack[p.Replicas[0]] == rack[p.Replicas[1]] {
			t.Errorf("%s-%d: replicas %v share rack %s", p.Topic, p.Partition, p.Replicas, rack[p.Replicas[0]])
		}
	}
	within(t, plan.After, 1, 2, 3, 4, 5)

	// Draining a rack's only broker cannot keep three racks: the replicas
	// go to the other two, as spread as they can be.
	bs = []Broker{{1, "a"}, {2, "b"}, {3, "c"}, {4, "a"}}
	parts = spreadOut(3, 3, 100, 1, 2, 3)
	plan, err = Compute(bs, parts, Goal{Drain: []int32{3}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range apply(parts, plan) {
		if slices.Contains(p.Replicas, 3) {
			t.Errorf("%s-%d still on broker 3: %v", p.Topic, p.Partition, p.Replicas)
		}
	}
}

func TestBytesEvenedBySwaps(t *testing.T) {
	bs := brokers(1, 2)
	// Same count on each broker, but broker 1 holds the big partitions.
	parts := []Partition{
		{Topic: "big", Partition: 0, Replicas: []int32{1}, Leader: 1, Size: 1000},
		{Topic: "big", Partition: 1, Replicas: []int32{1}, Leader: 1, Size: 1000},
		{Topic: "small", Partition: 0, Replicas: []int32{2}, Leader: 2, Size: 10},
		{Topic: "small", Partition: 1, Replicas: []int32{2}, Leader: 2, Size: 10},
	}
	plan, err := Compute(bs, parts, Goal{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, bs, parts, plan)
	if b1, b2 := loadOf(t, plan.After, 1).Bytes, loadOf(t, plan.After, 2).Bytes; b1 != 1010 || b2 != 1010 {
		t.Errorf("bytes after the plan: %d and %d, want 1010 each: %+v", b1, b2, plan.Moves)
	}
	if len(plan.Moves) != 2 {
		t.Errorf("%d moves, want one swap (2): %+v", len(plan.Moves), plan.Moves)
	}
}

func TestLeadersEvenedByReordering(t *testing.T) {
	bs := brokers(1, 2, 3)
	parts := spreadOut(6, 3, 100, 1, 2, 3)
	for i := range parts {
		parts[i].Replicas = []int32{1, 2, 3} // all prefer broker 1
		parts[i].Leader = 1
	}
	plan, err := Compute(bs, parts, Goal{})
	if err != nil {
		t.Fatal(err)
	}
	if moved := check(t, bs, parts, plan); moved != 0 {
		t.Errorf("evening leaders moved %d replicas", moved)
	}
	within(t, plan.After, 1, 2, 3)
	if l := loadOf(t, plan.Before, 1); l.Leaders != 6 {
		t.Errorf("before: %+v", plan.Before)
	}
}

// A partition with a replica on a broker that is not live would never
// finish a move (the dead replica never joins the ISR): evening out leaves
// its replicas where they are.
func TestPartitionsOnDeadBrokersStayPut(t *testing.T) {
	bs := brokers(1, 2, 3)
	parts := []Partition{
		{Topic: "t", Partition: 0, Replicas: []int32{1, 9}, Leader: 1},
		{Topic: "t", Partition: 1, Replicas: []int32{1, 2}, Leader: 1},
		{Topic: "t", Partition: 2, Replicas: []int32{1, 2}, Leader: 1},
	}
	plan, err := Compute(bs, parts, Goal{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, bs, parts, plan)
	for _, m := range plan.Moves {
		if m.Partition == 0 && !slices.Equal(slices.Sorted(slices.Values(m.To)), []int32{1, 9}) {
			t.Errorf("t-0, with a replica on dead broker 9, moves: %v", m.To)
		}
	}
	if loadOf(t, plan.After, 3).Replicas == 0 {
		t.Errorf("broker 3 gets nothing: %+v", plan.Moves)
	}
}
