package client

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client/clienttest"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
)

// produceOne produces a record to partition 0 and waits for its outcome.
func produceOne(t *testing.T, p *Producer, topic string) (Result, error) {
	t.Helper()
	done := make(chan struct{})
	var res Result
	var err error
	p.Produce(testContext(t), topic, Record{Partition: 0, Value: []byte("x")}, func(r Result, e error) {
		res, err = r, e
		close(done)
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome within 10 s")
	}
	return res, err
}

// A leader that is slow but keeps its leadership is waited for: the checks
// find it still leading, and the request is not abandoned (which would write
// its records twice).
func TestSlowLeaderIsNotAbandoned(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := dialTest(t, srv.Addr)
	if _, err := c.CreateTopic(testContext(t), "t", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	const slow = 600 * time.Millisecond
	srv.SetProduceHook(func(*stratav1.ProduceRequest) error {
		time.Sleep(slow)
		return nil
	})
	p := NewProducer(c, ProducerOptions{Linger: NoLinger, LeaderCheckInterval: 100 * time.Millisecond})
	defer p.Close()
	before := srv.MetadataCalls()
	res, err := produceOne(t, p, "t")
	if err != nil || res.Offset != 0 {
		t.Fatalf("result %+v, %v; want offset 0", res, err)
	}
	if n := srv.Produces(); n != 1 {
		t.Fatalf("%d produce calls, want 1: the slow request was abandoned", n)
	}
	if n := srv.MetadataCalls() - before; n < 2 {
		t.Fatalf("%d metadata refreshes while the request waited %v: the leader was not checked", n, slow)
	}
}

// A request held by a broker that lost the leadership and won it back (a
// higher leader epoch, the same node) is abandoned and sent again: whatever
// the broker does with the first one, it does under a leadership that ended.
func TestLeaderEpochBumpAbandonsTheRequest(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dialTest(t, cl.Broker(1).Addr)
	if _, err := c.CreateTopic(testContext(t), "t", 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	srv := cl.Broker(1)
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int32
	srv.SetProduceHook(func(*stratav1.ProduceRequest) error {
		if calls.Add(1) == 1 {
			<-release
			return status.Error(codes.Unavailable, "released at the end of the test")
		}
		return nil
	})
	p := NewProducer(c, ProducerOptions{Linger: NoLinger, LeaderCheckInterval: 100 * time.Millisecond})
	defer p.Close()
	elected := make(chan error, 1)
	go func() {
		err := await.Poll(await.DefaultTimeout, func() error {
			if calls.Load() == 0 {
				return errors.New("no produce call yet")
			}
			return nil
		})
		if err == nil {
			cl.SetLeader("t", 0, 1) // re-elected: same leader, next epoch
		}
		elected <- err
	}()
	res, err := produceOne(t, p, "t")
	if err := <-elected; err != nil {
		t.Fatalf("waiting for the first produce call: %v", err)
	}
	if err != nil || res.Offset != 0 {
		t.Fatalf("result %+v, %v; want offset 0", res, err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d produce calls, want 2 (the held one, then its retry)", n)
	}
}

// The refresh of a leader check does not wait on the silent broker, even
// when it is the one the client asked last time.
func TestLeaderCheckAsksTheSilentBrokerLast(t *testing.T) {
	cl := clienttest.NewCluster(t, 2)
	c := dialTest(t, cl.Addrs())
	ctx := testContext(t)
	if _, err := c.CreateTopic(ctx, "t", 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.refreshMetadata(ctx, []string{"t"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if c.candidates()[0] != cl.Broker(1).Addr {
		t.Fatalf("broker 1 is not the first to ask: %v", c.candidates())
	}
	cl.Broker(1).Pause()
	cl.SetLeader("t", 0, 2)
	if err := c.refreshMetadataAvoiding(ctx, []string{"t"}, time.Now(), 1); err != nil {
		t.Fatal(err)
	}
	if n := cl.Broker(1).HeldCalls(stratav1.Strata_Metadata_FullMethodName); n != 0 {
		t.Fatalf("the silent broker was asked for metadata %d times", n)
	}
	if l, e := c.leaderEpochOf("t", 0); l != 2 || e != 1 {
		t.Fatalf("metadata names leader %d epoch %d, want 2 epoch 1", l, e)
	}
}

// The error of an abandoned call is retried as codes.Unavailable.
func TestLeaderMovedErrorIsUnavailable(t *testing.T) {
	err := error(&leaderMovedError{node: 1, topic: "t", partition: 0, leader: 2, epoch: 3, sentEpoch: 2, silent: time.Second})
	if status.Code(err) != codes.Unavailable || !callRetriable(err) {
		t.Fatalf("%v: code %v, retriable %v", err, status.Code(err), callRetriable(err))
	}
	wrapped := fmt.Errorf("produce 1 records to topic %q partition 0: %w", "t", err)
	if status.Code(wrapped) != codes.Unavailable || !callRetriable(wrapped) {
		t.Fatalf("%v: code %v, retriable %v", wrapped, status.Code(wrapped), callRetriable(wrapped))
	}
}
