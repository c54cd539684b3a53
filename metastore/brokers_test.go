package metastore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
)

func brokerIDs(t *testing.T, s *Store) []int32 {
	t.Helper()
	brokers, err := s.Brokers(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := []int32{}
	for _, b := range brokers {
		ids = append(ids, b.NodeID)
	}
	return ids
}

func TestRegisterBroker(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	started := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var regs []*Registration
	for _, id := range []int32{10, 2, 1} {
		r, err := s.RegisterBroker(ctx, BrokerInfo{NodeID: id, KafkaAddr: "127.0.0.1:9092", GRPCAddr: "g", HTTPAddr: "h", StartedAt: started}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		regs = append(regs, r)
	}
	brokers, err := s.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 3 || brokers[0].NodeID != 1 || brokers[1].NodeID != 2 || brokers[2].NodeID != 10 {
		t.Fatalf("Brokers = %+v, want 1, 2, 10", brokers)
	}
	if b := brokers[2]; b.KafkaAddr != "127.0.0.1:9092" || b.GRPCAddr != "g" || b.HTTPAddr != "h" || !b.StartedAt.Equal(started) {
		t.Errorf("broker 10 = %+v", b)
	}

	// Close removes it at once.
	if err := regs[1].Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-regs[1].Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := regs[1].Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	if ids := brokerIDs(t, s); len(ids) != 2 || ids[0] != 1 || ids[1] != 10 {
		t.Errorf("brokers after closing 2: %v", ids)
	}
	if err := regs[1].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// And the id can be registered again.
	r, err := s.RegisterBroker(ctx, BrokerInfo{NodeID: 2}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// A broker that stops keeping its lease alive (here: its context ends)
// disappears once the TTL passes.
func TestBrokerRegistrationExpires(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(testContext(t))
	r, err := s.RegisterBroker(ctx, BrokerInfo{NodeID: 1}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Kept alive past its TTL.
	time.Sleep(2500 * time.Millisecond)
	if ids := brokerIDs(t, s); len(ids) != 1 {
		t.Fatalf("brokers while kept alive: %v", ids)
	}
	select {
	case <-r.Done():
		t.Fatal("registration ended while kept alive")
	default:
	}

	cancel()
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after ctx cancel")
	}
	if !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", r.Err())
	}
	await.True(t, 10*time.Second, "broker key to expire", func() bool { return len(brokerIDs(t, s)) == 0 })
}

func TestRegistrationReportsLostLease(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	r, err := s.RegisterBroker(ctx, BrokerInfo{NodeID: 1}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Someone else (an operator, a confused controller) revokes the lease.
	if _, err := s.client.Revoke(ctx, r.lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the lease was revoked")
	}
	if !errors.Is(r.Err(), ErrLeaseLost) {
		t.Errorf("Err = %v, want ErrLeaseLost", r.Err())
	}
	if ids := brokerIDs(t, s); len(ids) != 0 {
		t.Errorf("brokers after revoke: %v", ids)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after lost lease: %v", err)
	}
}

// A second live broker with the same id is refused, after waiting one TTL
// of the holder's lease in case the holder was dead.
func TestRegisterBrokerRefusesLiveDuplicate(t *testing.T) {
	s := newTestStore(t)
	ctx := testContext(t)
	r, err := s.RegisterBroker(ctx, BrokerInfo{NodeID: 3, KafkaAddr: "first:9092"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	_, err = s.RegisterBroker(ctx, BrokerInfo{NodeID: 3, KafkaAddr: "second:9092"}, time.Second)
	if !errors.Is(err, ErrBrokerRegistered) {
		t.Fatalf("duplicate registration: %v, want ErrBrokerRegistered", err)
	}
	t.Logf("refused after %v: %v", time.Since(start), err)
	brokers, err := s.Brokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 1 || brokers[0].KafkaAddr != "first:9092" {
		t.Errorf("brokers = %+v, want only the first", brokers)
	}
	select {
	case <-r.Done():
		t.Error("the holder's registration ended")
	default:
	}
}

// A broker restarting after a crash finds its previous run's key and waits
// for that lease to expire instead of failing.
func TestRegisterBrokerWaitsForPreviousRun(t *testing.T) {
	s := newTestStore(t)
	crashed, crash := context.WithCancel(testContext(t))
	old, err := s.RegisterBroker(crashed, BrokerInfo{NodeID: 4, KafkaAddr: "old:9092"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	crash() // keep-alives stop; the lease is not revoked
	<-old.Done()

	r, err := s.RegisterBroker(testContext(t), BrokerInfo{NodeID: 4, KafkaAddr: "new:9092"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	brokers, err := s.Brokers(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 1 || brokers[0].KafkaAddr != "new:9092" {
		t.Errorf("brokers = %+v, want the new run", brokers)
	}
	// The previous run's secret went with its registration.
	if len(brokers) == 1 && (brokers[0].ReplicaSecret.Matches(string(old.ReplicaSecret())) || !brokers[0].ReplicaSecret.Matches(string(r.ReplicaSecret()))) {
		t.Error("the new registration does not carry a secret of its own")
	}
}
