package group_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/group"
)

// groupTimeouts are group configs as the broker serves them: per group,
// the broker's defaults for a group without its own.
type groupTimeouts struct {
	mu      sync.Mutex
	session map[string]time.Duration
	beat    map[string]time.Duration
}

func (g *groupTimeouts) get(_ context.Context, name string) (time.Duration, time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.session[name], g.beat[name], nil
}

func (g *groupTimeouts) set(name string, session, beat time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.session[name], g.beat[name] = session, beat
}

// TestConsumerGroupConfigsApply: a group's consumer.session.timeout.ms and
// consumer.heartbeat.interval.ms apply to its members (the heartbeat
// interval it answers, the session after which it removes them, also
// after a coordinator takes the group over), from the member's next
// heartbeat after they change; a group without them takes the broker's.
func TestConsumerGroupConfigsApply(t *testing.T) {
	e := newConsumerEnv(t)
	ctx := context.Background()
	cfgs := &groupTimeouts{session: map[string]time.Duration{}, beat: map[string]time.Duration{}}
	coordinator := func() *group.Coordinator {
		return group.New(e.store, group.Config{Now: e.clk.Now, MinSessionTimeout: time.Second,
			ConsumerSessionTimeout: 50 * time.Second, ConsumerHeartbeatInterval: 4 * time.Second,
			Topics:           func() []group.TopicInfo { return slices.Clone(e.topics) },
			ConsumerTimeouts: cfgs.get})
	}
	e.c = coordinator()
	cfgs.set("g", 12*time.Second, 2*time.Second)

	if r := e.join("m1"); r.HeartbeatInterval != 2*time.Second {
		t.Fatalf("heartbeat interval %v, want the group's 2s", r.HeartbeatInterval)
	}
	other, err := e.c.ConsumerGroupHeartbeat(ctx, consumerJoin("other"))
	if err != nil || other.HeartbeatInterval != 4*time.Second {
		t.Fatalf("a group without configs: %+v, %v; want the broker's 4s", other, err)
	}
	e.clk.Advance(13 * time.Second)
	e.c.Tick(ctx)
	if _, err := e.beat("m1", 1, nil); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("member 13s after its last heartbeat, session 12s: %v, want ErrUnknownMemberID", err)
	}
	if _, err := e.c.ConsumerGroupHeartbeat(ctx, group.ConsumerHeartbeat{Group: "other", MemberID: other.MemberID,
		MemberEpoch: other.MemberEpoch, RebalanceTimeout: -1}); err != nil {
		t.Fatalf("member of a group with the broker's 50s session, 13s on: %v", err)
	}

	// The group's configs change: the next heartbeat takes them.
	r := e.join("m2")
	cfgs.set("g", 30*time.Second, 3*time.Second)
	if r = e.mustBeat("m2", r.MemberEpoch, nil); r.HeartbeatInterval != 3*time.Second {
		t.Fatalf("heartbeat interval after the change %v, want 3s", r.HeartbeatInterval)
	}
	e.clk.Advance(20 * time.Second)
	e.c.Tick(ctx)
	r = e.mustBeat("m2", r.MemberEpoch, nil) // within the new 30s session

	// A coordinator taking the group over restarts the sessions with the
	// group's timeout.
	cfgs.set("g", 15*time.Second, 3*time.Second)
	e.c = coordinator()
	d, err := e.c.DescribeConsumerGroup(ctx, "g") // reads the group back
	if err != nil || len(d.Members) != 1 {
		t.Fatalf("taken over: %+v, %v", d, err)
	}
	e.clk.Advance(16 * time.Second)
	e.c.Tick(ctx)
	if _, err := e.beat("m2", r.MemberEpoch, nil); !errors.Is(err, group.ErrUnknownMemberID) {
		t.Fatalf("member 16s after the takeover, session 15s: %v, want ErrUnknownMemberID", err)
	}
}

// A heartbeat sent to a broker that does not coordinate the group is
// answered NOT_COORDINATOR without reading the group's configs.
func TestConsumerConfigsNotReadByAnotherCoordinator(t *testing.T) {
	e := newConsumerEnv(t)
	reads := 0
	e.c = group.New(e.store, group.Config{Now: e.clk.Now, Owns: func(string) bool { return false },
		ConsumerTimeouts: func(context.Context, string) (time.Duration, time.Duration, error) {
			reads++
			return 0, 0, nil
		}})
	if _, err := e.c.ConsumerGroupHeartbeat(context.Background(), consumerJoin("g")); !errors.Is(err, group.ErrNotCoordinator) || reads != 0 {
		t.Fatalf("heartbeat to another coordinator: %v after %d config reads, want ErrNotCoordinator and none", err, reads)
	}
}
