package testenvtest

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

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// KafkaClient connects a franz-go client to every broker of c, closed when
// the test ends, and returns it with an admin client on it and the seed
// addresses.
func KafkaClient(t testing.TB, c *testenv.Cluster, opts ...kgo.Opt) (*kgo.Client, *kadm.Client, []string) {
	t.Helper()
	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl), seeds
}

// CreateKafkaTopic creates a topic of one partition with replication
// factor rf and configs through Kafka's CreateTopics.
func CreateKafkaTopic(ctx context.Context, t testing.TB, adm *kadm.Client, name string, rf int16, configs map[string]string) {
	t.Helper()
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, 1, rf, cfg, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// PartitionLeader is the broker leading partition p of topic, as Kafka's
// Metadata reports it. A broker answers LEADER_NOT_AVAILABLE (leader -1),
// or does not list the topic yet, while its view of etcd lags a change;
// the test waits that out rather than taking the answer of the moment.
func PartitionLeader(t testing.TB, c *testenv.Cluster, adm *kadm.Client, topic string, p int32) *testenv.Broker {
	t.Helper()
	var leader *testenv.Broker
	await.NoError(t, 30*time.Second, "a leader of "+topic, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			return fmt.Errorf("topic %s in metadata: listed %v, err %v", topic, ok, td.Err)
		}
		pd, ok := td.Partitions[p]
		if !ok || pd.Err != nil || pd.Leader < 0 {
			return fmt.Errorf("partition %d: listed %v, leader %d, err %v", p, ok, pd.Leader, pd.Err)
		}
		if leader = c.Broker(pd.Leader); leader == nil {
			return fmt.Errorf("partition %d: leader %d is not a broker of the cluster", p, pd.Leader)
		}
		return nil
	})
	return leader
}

// ConsumeValues reads topic from the start with a client made of opts and
// fails unless every value of want is read.
func ConsumeValues(ctx context.Context, t testing.TB, name string, opts []kgo.Opt, topic string, want ...string) {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	missing := map[string]bool{}
	for _, v := range want {
		missing[v] = true
	}
	for len(missing) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume on %s: %v not read: %v", name, missing, err)
		}
		fs.EachRecord(func(r *kgo.Record) { delete(missing, string(r.Value)) })
	}
}

// RoundTrip sends req on c with a v1 request header and returns the body of
// the response, which must carry corr. It is for tests that need what a
// client library would not send, or that look at the codes it would hide.
func RoundTrip(c net.Conn, req kmsg.Request, corr int32, timeout time.Duration) ([]byte, error) {
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

// TopicID is topic's id as Metadata reports it: Fetch from v13 names
// topics by id, so a hand-built Fetch carries both name and id.
func TopicID(ctx context.Context, t testing.TB, cl *kgo.Client, topic string) [16]byte {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata of %s: %+v", topic, resp.Topics)
	}
	return resp.Topics[0].TopicID
}
