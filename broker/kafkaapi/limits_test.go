package kafkaapi_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// metric reads one series (name and labels as exposed) from a broker's
// /metrics; one not exposed reads as 0.
func metric(t *testing.T, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// produceFrame is a Produce v7 frame with one partition whose records are
// size bytes of zeros: not a batch, so the broker answers with an error for
// the partition, but it answers.
func produceFrame(correlationID int32, size int) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = 1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "limits"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = make([]byte, size)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return frame(req, 7, correlationID)
}

// expectAnswer reads the response to correlationID.
func (c *rawConn) expectAnswer(correlationID int32) {
	c.t.Helper()
	id, _, err := c.read()
	if err != nil {
		c.t.Fatalf("no answer: %v", err)
	}
	if id != correlationID {
		c.t.Fatalf("answer to correlation id %d, want %d", id, correlationID)
	}
}

// expectNoAnswerYet checks that nothing comes back, nor is the connection
// closed, for a little while: a client waiting on a limit is kept waiting.
func (c *rawConn) expectNoAnswerYet() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var one [1]byte
	_, err := c.nc.Read(one[:])
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("read %v, want nothing yet", err)
	}
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
}

// Only Produce may be as large as socket.request.max.bytes; every other
// request is bounded by socket.request.max.bytes.non.produce.
func TestRequestsOtherThanProduceHaveALowerLimit(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"socket.request.max.bytes.non.produce": "65536"})
	c := dialRaw(t, addr)
	c.write(produceFrame(1, 70000))
	c.expectAnswer(1)

	md := kmsg.NewPtrMetadataRequest()
	for i := range 5000 {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr("a-topic-of-the-metadata-request-" + strconv.Itoa(i))
		md.Topics = append(md.Topics, t)
	}
	big := frame(md, 1, 2)
	if len(big) <= 65536 {
		t.Fatalf("metadata frame of %d bytes is not over the limit", len(big))
	}
	c.write(big)
	c.expectClosed()
}

// A request is charged what decoding and answering it may take before its
// body is read; one that could take more than requests can ever hold of the
// budget is refused, and one that cannot have its share yet waits for it.
func TestRequestsWaitForTheMemoryBudget(t *testing.T) {
	a := testenv.StartInProcessAddrs(t, map[string]string{
		"queued.max.request.bytes": "4194304",
		"socket.request.max.bytes": "4194304",
	})
	addr, httpAddr := a.Kafka.String(), a.HTTP.String()
	// What the budget holds before any request is held for good (the
	// core's decompression slots): requests share the rest.
	held := metric(t, httpAddr, "strata_request_memory_held_bytes")
	free := int(metric(t, httpAddr, "strata_request_memory_limit_bytes") - held)

	// A Fetch may take 160 times its size once decoded and answered.
	fetch := kmsg.NewPtrFetchRequest()
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "limits"
	for i := range free/160/16 + 100 { // 16 bytes a partition at v4
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition = int32(i)
		ft.Partitions = append(ft.Partitions, p)
	}
	fetch.Topics = append(fetch.Topics, ft)
	refused := dialRaw(t, addr)
	refused.write(frame(fetch, 4, 1))
	refused.expectClosed()

	// A Produce frame holds most of what is free while it arrives...
	stalled := dialRaw(t, addr)
	stalled.write(produceFrame(1, free*7/10)[:100<<10])
	await.True(t, 10*time.Second, "the first produce to hold its memory", func() bool {
		return metric(t, httpAddr, "strata_request_memory_held_bytes") >= held+float64(free*7/10)
	})
	// ... so a smaller one waits for it.
	waiting := dialRaw(t, addr)
	waiting.write(produceFrame(2, free*4/10))
	await.True(t, 10*time.Second, "the second produce to wait for memory", func() bool {
		return metric(t, httpAddr, "strata_kafka_request_memory_waits_total") >= 1
	})
	waiting.expectNoAnswerYet()
	// Small requests are not queued behind it.
	dialRaw(t, addr).apiVersions(3)

	stalled.nc.Close()
	waiting.expectAnswer(2)
	await.True(t, 10*time.Second, "the budget to be given back", func() bool {
		return metric(t, httpAddr, "strata_request_memory_held_bytes") == held
	})
}

// Past max.connections.per.ip a new connection is closed at once; one
// closing makes room.
func TestConnectionsOverThePerAddressLimitAreClosed(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"max.connections.per.ip": "2"})
	first, second := dialRaw(t, addr), dialRaw(t, addr)
	first.apiVersions(1)
	second.apiVersions(1)
	dialRaw(t, addr).expectClosed()
	first.nc.Close()
	await.NoError(t, 10*time.Second, "a new connection to be served", func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(frame(kmsg.NewPtrApiVersionsRequest(), 0, 2)); err != nil {
			return err
		}
		var size [4]byte
		_, err = io.ReadFull(c, size[:])
		return err
	})
}

// At max.connections the broker stops accepting, as Kafka does: a new
// client waits until a connection closes, then is served.
func TestConnectionsBeyondTheLimitWait(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"max.connections": "2"})
	first, second := dialRaw(t, addr), dialRaw(t, addr)
	first.apiVersions(1)
	second.apiVersions(1)
	third := dialRaw(t, addr)
	third.write(frame(kmsg.NewPtrApiVersionsRequest(), 0, 2))
	third.expectNoAnswerYet()
	first.nc.Close()
	third.expectAnswer(2)
}

// A connection that sends nothing for connections.max.idle.ms is closed, and
// so is one whose request has not arrived whole socket.request.timeout.ms
// after its first byte; each is counted.
func TestIdleAndSlowConnectionsAreClosed(t *testing.T) {
	a := testenv.StartInProcessAddrs(t, map[string]string{
		"connections.max.idle.ms":   "300",
		"socket.request.timeout.ms": "300",
	})
	addr, httpAddr := a.Kafka.String(), a.HTTP.String()
	idle := dialRaw(t, addr)
	idle.apiVersions(1)
	idle.expectClosed()

	slow := dialRaw(t, addr)
	f := frame(kmsg.NewPtrApiVersionsRequest(), 0, 1)
	slow.write(f[:len(f)-1])
	slow.expectClosed()
	await.True(t, 10*time.Second, "both to be counted", func() bool {
		return metric(t, httpAddr, `strata_kafka_connections_timed_out_total{reason="idle"}`) >= 1 &&
			metric(t, httpAddr, `strata_kafka_connections_timed_out_total{reason="request"}`) >= 1
	})
}

// kmsg leaves a request's byte fields pointing into its frame, and the group
// coordinator keeps a member's protocol metadata: the frame must not be
// reused for a later request while the metadata lives.
func TestGroupMetadataOutlivesItsFrame(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	c := dialRaw(t, addr)
	metadata := []byte(strings.Repeat("metadata of the only member ", 8))
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group = "outlives"
	join.SessionTimeoutMillis = 30000
	join.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	p.Metadata = metadata
	join.Protocols = append(join.Protocols, p)
	c.write(frame(join, 2, 1))
	_, body, err := c.read()
	if err != nil {
		t.Fatal(err)
	}
	joined := kmsg.NewPtrJoinGroupResponse()
	joined.SetVersion(2)
	if err := joined.ReadFrom(body); err != nil || joined.ErrorCode != 0 {
		t.Fatalf("join: %v, error code %d", err, joined.ErrorCode)
	}

	// The next request on the connection is as long as the join was.
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = "outlives", joined.Generation, joined.MemberID
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID = joined.MemberID
	a.MemberAssignment = []byte(strings.Repeat("z", len(metadata)))
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	c.write(frame(sync, 1, 2))
	c.expectAnswer(2)

	describe := kmsg.NewPtrDescribeGroupsRequest()
	describe.Groups = []string{"outlives"}
	c.write(frame(describe, 0, 3))
	_, body, err = c.read()
	if err != nil {
		t.Fatal(err)
	}
	described := kmsg.NewPtrDescribeGroupsResponse()
	described.SetVersion(0)
	if err := described.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if len(described.Groups) != 1 || len(described.Groups[0].Members) != 1 {
		t.Fatalf("described %+v, want the group and its member", described.Groups)
	}
	if got := described.Groups[0].Members[0].ProtocolMetadata; string(got) != string(metadata) {
		t.Fatalf("member metadata %q, want %q", got, metadata)
	}
}
