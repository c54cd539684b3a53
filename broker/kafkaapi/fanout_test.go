package kafkaapi_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A Metadata request naming a topic again and again is answered with the
// topic once, as Kafka does: otherwise a request of a few kilobytes could
// ask for a topic of thousands of partitions a thousand times.
func TestMetadataAnswersEachTopicOnce(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"auto.create.topics.enable": "false"})
	if _, err := kadm.NewClient(newClient(t, addr)).CreateTopic(ctxFor(t), 8, 1, nil, "asked-often"); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{"asked-often", "missing", "asked-often", "missing", "asked-often"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	c := dialRaw(t, addr)
	c.write(frame(req, 9, 1))
	_, body, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(9)
	if err := resp.ReadFrom(body[1:]); err != nil { // after the flexible header's tags
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, rt := range resp.Topics {
		got[*rt.Topic]++
	}
	if len(resp.Topics) != 2 || got["asked-often"] != 1 || got["missing"] != 1 {
		t.Fatalf("answered %v, want each topic once", got)
	}
}

// A Produce naming more topics than are appended at once still answers
// every one of them.
func TestProduceToManyTopicsAnswersEach(t *testing.T) {
	addr, _ := startBroker(t, nil)
	const topics = 150
	req := kmsg.NewPtrProduceRequest()
	req.Acks = 1
	req.TimeoutMillis = 10000
	for i := range topics {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = fmt.Sprintf("fan-out-%d", i)
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = encodeBatch(t, -1, -1, -1, "v")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	c := dialRaw(t, addr)
	c.write(frame(req, 7, 1))
	_, body, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(7)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != topics {
		t.Fatalf("%d topics answered, want %d", len(resp.Topics), topics)
	}
	for i, rt := range resp.Topics {
		if want := fmt.Sprintf("fan-out-%d", i); rt.Topic != want || len(rt.Partitions) != 1 {
			t.Fatalf("answer %d is for %q with %d partitions, want %q with 1", i, rt.Topic, len(rt.Partitions), want)
		}
	}
}
