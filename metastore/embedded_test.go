package metastore

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd") // created by etcd, owner-only
	ctx := testContext(t)

	start := func() (*Embedded, *Store) {
		t.Helper()
		e, err := StartEmbedded(ctx, dir, "127.0.0.1:0", testLogger())
		if err != nil {
			t.Fatal(err)
		}
		s, err := Dial(ctx, e.Endpoints(), "", testLogger())
		if err != nil {
			e.Close()
			t.Fatal(err)
		}
		return e, s
	}
	stop := func(e *Embedded, s *Store) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}

	e, s := start()
	created, err := s.CreateTopic(ctx, Topic{Name: "durable", Configs: map[string]string{"retention.ms": "1"}}, [][]int32{{1}})
	if err != nil {
		stop(e, s)
		t.Fatal(err)
	}
	firstEndpoint := e.Endpoints()[0]
	stop(e, s)

	e, s = start()
	defer stop(e, s)
	t.Logf("endpoints: %s, then %s", firstEndpoint, e.Endpoints()[0])
	got, err := s.GetTopic(ctx, "durable")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Revision != created.Revision || got.Configs["retention.ms"] != "1" {
		t.Errorf("after restart: %+v, want %+v", got, created)
	}
}

func TestStartEmbeddedRejectsNonLoopback(t *testing.T) {
	_, err := StartEmbedded(testContext(t), t.TempDir(), "192.0.2.1:2379", nil)
	if err == nil {
		t.Fatal("no error for a non-loopback address")
	}
}

func TestDialUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	// A port that was free a moment ago; nothing listens there.
	u, err := loopbackURL("127.0.0.1:0", freePort)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(ctx, []string{u.String()}, "", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial to nothing: %v, want context.DeadlineExceeded", err)
	}
}

// A port chosen for the embedded etcd can be taken by another process before
// etcd binds it; the start then chooses again instead of failing.
func TestEmbeddedChoosesAgainWhenItsPortWasTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, takenPort, _ := net.SplitHostPort(taken.Addr().String())
	picks := 0
	pick := func(host string) (string, error) {
		picks++
		if picks == 1 {
			return takenPort, nil
		}
		return freePort(host)
	}
	e, err := startEmbedded(testContext(t), t.TempDir(), "127.0.0.1:0", nil, pick)
	if err != nil {
		t.Fatalf("start with the first chosen port taken: %v", err)
	}
	defer e.Close()
	if picks < 4 {
		t.Errorf("ports chosen %d times, want the client and peer ports chosen twice", picks)
	}
	for _, ep := range e.Endpoints() {
		if strings.HasSuffix(ep, ":"+takenPort) {
			t.Errorf("endpoint %s is on the taken port", ep)
		}
	}
}
