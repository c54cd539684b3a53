package testenv_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka requests sent by hand on a raw connection, for tests that need
// what a client library would not send, or that look at the codes it would
// hide.

// roundTrip sends req on c with a v1 request header and returns the body of
// the response, which must carry corr.
func roundTrip(c net.Conn, req kmsg.Request, corr int32, timeout time.Duration) ([]byte, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	const clientID = "attacker"
	msg := binary.BigEndian.AppendUint32(nil, 0)
	msg = binary.BigEndian.AppendUint16(msg, uint16(req.Key()))
	msg = binary.BigEndian.AppendUint16(msg, uint16(req.GetVersion()))
	msg = binary.BigEndian.AppendUint32(msg, uint32(corr))
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(clientID)))
	msg = append(msg, clientID...)
	if req.IsFlexible() {
		msg = append(msg, 0)
	}
	msg = req.AppendTo(msg)
	binary.BigEndian.PutUint32(msg, uint32(len(msg)-4))
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	size := binary.BigEndian.Uint32(head[:4])
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != corr {
		return nil, fmt.Errorf("response has correlation id %d, want %d", got, corr)
	}
	if size < 4 || size > 64<<20 {
		return nil, fmt.Errorf("response of %d bytes", size)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if req.IsFlexible() && req.Key() != 18 {
		// The response header's tagged fields, empty from this broker.
		if len(body) == 0 || body[0] != 0 {
			return nil, fmt.Errorf("response header has tagged fields")
		}
		body = body[1:]
	}
	return body, nil
}

// createKafkaTopics creates one-partition topics through the Kafka API.
func createKafkaTopics(t testing.TB, addr string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resps, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, topics...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("create topics %v: %v", topics, err)
	}
}

// assertTopicsEmpty checks that nothing was written to the topics.
func assertTopicsEmpty(t testing.TB, addr string, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("%s-%d: end offset %d (err %v), want 0: a refused batch was written", o.Topic, o.Partition, o.Offset, o.Err)
		}
	})
}
