package kafkatests_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// Consumer-group state that clients control, against real brokers: offset
// metadata and commits for partitions that do not exist must not fill
// etcd, a group's pending members are bounded, groups a client only names
// are not kept in memory, and old OffsetFetch versions never send a length
// that wrapped.

// kafkaConn is one raw Kafka connection, for requests at a chosen version.
type kafkaConn struct {
	t  testing.TB
	nc net.Conn
	id int32
}

func dialKafka(t testing.TB, addr string) *kafkaConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &kafkaConn{t: t, nc: nc}
}

// roundTrip sends req at version and decodes the response.
func (c *kafkaConn) roundTrip(req kmsg.Request, version int16) kmsg.Response {
	c.t.Helper()
	c.id++
	req.SetVersion(version)
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("hostile")).AppendRequest(nil, req, c.id)); err != nil {
		c.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		c.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.nc, body); err != nil {
		c.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	if id := int32(binary.BigEndian.Uint32(body)); id != c.id {
		c.t.Fatalf("correlation id %d, want %d", id, c.id)
	}
	body = body[4:]
	if req.IsFlexible() {
		body = body[1:] // the response header's empty tagged fields
	}
	resp := req.ResponseKind()
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("%s v%d response: %v", kmsg.NameForKey(req.Key()), version, err)
	}
	return resp
}

// commitRequest is an OffsetCommit outside any generation (as an
// assign-mode consumer sends it) of one offset per partition.
func commitRequest(group, topic string, metadata string, partitions ...int32) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.Metadata = p, 1, &metadata
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// commitCodes is each partition's error code, by "topic/partition".
func commitCodes(resp kmsg.Response) map[string]int16 {
	out := map[string]int16{}
	for _, rt := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, rp := range rt.Partitions {
			out[rt.Topic+"/"+strconv.Itoa(int(rp.Partition))] = rp.ErrorCode
		}
	}
	return out
}

func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	_, peak, err := testenv.Memory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return peak
}

func createTopicRaw(t testing.TB, adm *kadm.Client, name string, partitions int32) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	return err
}

// With etcd's quota lowered (the measurement used 48 MiB; 8 MiB here), a
// few commits of large metadata filled it and every write of the cluster
// failed after ("mvcc: database space exceeded"): topic creation and every
// offset commit. Metadata over offset.metadata.max.bytes (4096) is refused
// for its partition with OFFSET_METADATA_TOO_LARGE and nothing is written.
func TestOffsetMetadataCannotFillEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and a broker")
	}
	const (
		quota    = 8 << 20
		metadata = 256 << 10
		commits  = 48 // 12 MiB of metadata, more than the quota
	)
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 1,
		EtcdArgs: []string{"--quota-backend-bytes", strconv.Itoa(quota)}})
	b := c.Brokers()[0]
	compatWaitListening(t, []string{b.KafkaAddr()})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := createTopicRaw(t, adm, "orders", 1); err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Etcd().Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	dbSize := func() int64 {
		st, err := cli.Status(t.Context(), c.Etcd().Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		return st.DbSize
	}
	sizeBefore := dbSize()

	conn := dialKafka(t, b.KafkaAddr())
	big := strings.Repeat("m", metadata)
	codes := map[int16]int{}
	for i := range commits {
		resp := conn.roundTrip(commitRequest(fmt.Sprintf("filler-%d", i), "orders", big, 0), 8)
		codes[commitCodes(resp)["orders/0"]]++
	}
	sizeAfter := dbSize()
	t.Logf("%d commits of %d KiB of metadata: error codes %v; etcd's database %d → %d KiB; peak RSS %d MiB",
		commits, metadata>>10, codes, sizeBefore>>10, sizeAfter>>10, peakRSS(t, b.Pid())>>20)

	if n := codes[kerr.OffsetMetadataTooLarge.Code]; n != commits {
		t.Errorf("%d of %d commits of %d KiB of metadata refused with OFFSET_METADATA_TOO_LARGE, want all (codes %v)", n, commits, metadata>>10, codes)
	}
	if grown := sizeAfter - sizeBefore; grown >= metadata {
		t.Errorf("etcd's database grew by %d KiB", grown>>10)
	}
	// The cluster still writes: a topic, and a commit of ordinary metadata.
	if err := createTopicRaw(t, adm, "after", 1); err != nil {
		t.Errorf("create a topic after the commits: %v", err)
	}
	if code := commitCodes(conn.roundTrip(commitRequest("ordinary", "orders", "checkpoint", 0), 8))["orders/0"]; code != 0 {
		t.Errorf("a commit with 10 bytes of metadata: %v", kerr.ErrorForCode(code))
	}
}

// Commits for topics and partitions that do not exist were accepted and
// stored; they are refused per partition with UNKNOWN_TOPIC_OR_PARTITION,
// as Kafka refuses them, and the request's other partitions are committed.
func TestOffsetCommitForUnknownPartitionsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := createTopicRaw(t, adm, "orders", 2); err != nil {
		t.Fatal(err)
	}
	conn := dialKafka(t, dev.KafkaAddr)
	req := commitRequest("readers", "orders", "", 0, 1, 2, 1000)
	ghost := commitRequest("", "no-such-topic", "", 0, 7)
	req.Topics = append(req.Topics, ghost.Topics...)
	codes := commitCodes(conn.roundTrip(req, 8))
	want := map[string]int16{
		"orders/0": 0, "orders/1": 0,
		"orders/2":        kerr.UnknownTopicOrPartition.Code,
		"orders/1000":     kerr.UnknownTopicOrPartition.Code,
		"no-such-topic/0": kerr.UnknownTopicOrPartition.Code,
		"no-such-topic/7": kerr.UnknownTopicOrPartition.Code,
	}
	for tp, code := range want {
		if codes[tp] != code {
			t.Errorf("commit of %s: %v, want %v", tp, kerr.ErrorForCode(codes[tp]), kerr.ErrorForCode(code))
		}
	}
	fetched, err := adm.FetchOffsets(t.Context(), "readers")
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	fetched.Each(func(o kadm.OffsetResponse) {
		stored = append(stored, o.Topic+"/"+strconv.Itoa(int(o.Partition)))
	})
	slices.Sort(stored)
	if !slices.Equal(stored, []string{"orders/0", "orders/1"}) {
		t.Errorf("stored offsets %v, want orders/0 and orders/1 only", stored)
	}
	// A request naming only partitions that do not exist creates no group.
	conn.roundTrip(commitRequest("ghosts", "no-such-topic", "", 0), 8)
	listed, err := adm.ListGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := listed.Groups(); !slices.Equal(got, []string{"readers"}) {
		t.Errorf("groups listed: %v, want readers only", got)
	}
	t.Logf("peak RSS %d MiB", peakRSS(t, dev.Pid())>>20)
}

// Every JoinGroup (v4+) without a member id was answered MEMBER_ID_REQUIRED
// with a new id that the coordinator remembered for the session timeout (up
// to 30 minutes): one group, or all of them, gathered pending members
// without bound. A group holds group.max.size members and pending members;
// a new member beyond is refused with GROUP_MAX_SIZE_REACHED, as Kafka
// refuses it.
func TestGroupMaxSizeBoundsPendingMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	const maxSize = 10
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--config", "group.max.size=" + strconv.Itoa(maxSize)}})
	conn := dialKafka(t, dev.KafkaAddr)
	join := func(group, member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 1_800_000, 60_000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, p)
		return conn.roundTrip(req, 5).(*kmsg.JoinGroupResponse)
	}
	codes := map[int16]int{}
	for range 3 * maxSize {
		codes[join("crowded", "").ErrorCode]++
	}
	t.Logf("%d first joins of one group: %v", 3*maxSize, codes)
	if codes[kerr.MemberIDRequired.Code] != maxSize || codes[kerr.GroupMaxSizeReached.Code] != 2*maxSize {
		t.Errorf("first joins answered %v; want %d MEMBER_ID_REQUIRED, then GROUP_MAX_SIZE_REACHED", codes, maxSize)
	}
	// Other groups are not affected.
	if code := join("other", "").ErrorCode; code != kerr.MemberIDRequired.Code {
		t.Errorf("first join of another group: %v", kerr.ErrorForCode(code))
	}
	t.Logf("peak RSS %d MiB", peakRSS(t, dev.Pid())>>20)
}

// A group that a client only names (a commit of nothing, a commit refused
// for every partition) was created in the coordinator's memory and kept
// for good: ListGroups listed groups that exist nowhere else. Groups are
// kept in memory while they have members, pending members or work under
// way.
func TestNamedGroupsAreNotKeptInMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	const (
		groups  = 5_000
		workers = 8
	)
	dev := testenv.StartDev(t, testenv.DevOptions{})
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rssBefore := peakRSS(t, dev.Pid())
	watch := testenv.WatchKafka(dev.KafkaAddr)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := dialKafka(t, dev.KafkaAddr)
			for {
				i := next.Add(1)
				if i > groups {
					return
				}
				req := kmsg.NewPtrOffsetCommitRequest()
				req.Group, req.Generation = fmt.Sprintf("named-%06d", i), -1
				conn.roundTrip(req, 8)
			}
		}()
	}
	wg.Wait()
	slowest, answered, failures := watch.Stop()
	t.Logf("%d empty commits of distinct groups: peak RSS %d → %d MiB; ApiVersions slowest %v over %d answers",
		groups, rssBefore>>20, peakRSS(t, dev.Pid())>>20, slowest, answered)
	if len(failures) > 0 || slowest > time.Second {
		t.Errorf("a well-behaved client: slowest answer %v, failures %v", slowest, failures)
	}
	await.NoError(t, 10*time.Second, "the named groups to be forgotten", func() error {
		listed, err := adm.ListGroups(t.Context())
		if err != nil {
			return err
		}
		if n := len(listed.Groups()); n > 0 {
			return fmt.Errorf("ListGroups lists %d groups that have nothing stored", n)
		}
		return nil
	})
}

// OffsetFetch v0-v5 carry metadata with an int16 length: metadata committed
// longer (with a flexible OffsetCommit, when offset.metadata.max.bytes
// allows it) came back with its length wrapped (1,000,000 bytes as
// 16,960), and the rest of the response misread. Such a partition is
// answered OFFSET_METADATA_TOO_LARGE instead at those versions; from v6
// the metadata comes back whole.
func TestOffsetFetchNeverWrapsMetadataLength(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	const long = 40_000 // over 32,767
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--config", "offset.metadata.max.bytes=100000"}})
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := createTopicRaw(t, kadm.NewClient(cl), "orders", 2); err != nil {
		t.Fatal(err)
	}
	conn := dialKafka(t, dev.KafkaAddr)
	md := strings.Repeat("x", long)
	req := commitRequest("keeper", "orders", md, 0)
	short := kmsg.NewOffsetCommitRequestTopicPartition()
	short.Partition, short.Offset, short.Metadata = 1, 5, kmsg.StringPtr("short")
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, short)
	if codes := commitCodes(conn.roundTrip(req, 8)); codes["orders/0"] != 0 || codes["orders/1"] != 0 {
		t.Fatalf("commit of %d bytes of metadata (offset.metadata.max.bytes=100000): %v", long, codes)
	}
	for _, v := range []int16{1, 5, 6, 7} {
		fetch := kmsg.NewPtrOffsetFetchRequest()
		fetch.Group = "keeper"
		ft := kmsg.NewOffsetFetchRequestTopic()
		ft.Topic, ft.Partitions = "orders", []int32{0, 1}
		fetch.Topics = append(fetch.Topics, ft)
		resp := conn.roundTrip(fetch, v).(*kmsg.OffsetFetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Errorf("OffsetFetch v%d: %+v", v, resp.Topics)
			continue
		}
		for _, p := range resp.Topics[0].Partitions {
			got := ""
			if p.Metadata != nil {
				got = *p.Metadata
			}
			switch {
			case p.Partition == 1 && (p.ErrorCode != 0 || p.Offset != 5 || got != "short"):
				t.Errorf("OffsetFetch v%d, the partition after the long metadata: offset %d, %d bytes of metadata, %v",
					v, p.Offset, len(got), kerr.ErrorForCode(p.ErrorCode))
			case p.Partition == 0 && v < 6 && p.ErrorCode != kerr.OffsetMetadataTooLarge.Code:
				t.Errorf("OffsetFetch v%d: %d bytes of metadata came back as %d (%v); want OFFSET_METADATA_TOO_LARGE",
					v, long, len(got), kerr.ErrorForCode(p.ErrorCode))
			case p.Partition == 0 && v >= 6 && (p.ErrorCode != 0 || got != md):
				t.Errorf("OffsetFetch v%d: %d bytes of metadata came back as %d (%v)", v, long, len(got), kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	t.Logf("peak RSS %d MiB", peakRSS(t, dev.Pid())>>20)
}

// Pending member ids of all groups together are bounded: a flood of first
// joins across many groups made the coordinator remember every id (and
// every group) for its session timeout, up to 30 minutes. The oldest is
// forgotten first, so a client that waited past a flood joins again from
// the start.
func TestPendingMembersBoundedOverAllGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker")
	}
	const (
		flood   = 20_000 // twice the bound of 10,000
		workers = 8
	)
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: []string{"--config", "group.initial.rebalance.delay.ms=0"}})
	join := func(conn *kafkaConn, group, member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 1_800_000, 10_000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, p)
		return conn.roundTrip(req, 5).(*kmsg.JoinGroupResponse)
	}
	first := dialKafka(t, dev.KafkaAddr)
	early := join(first, "early", "")
	if early.ErrorCode != kerr.MemberIDRequired.Code {
		t.Fatalf("first join: %v", kerr.ErrorForCode(early.ErrorCode))
	}
	rssBefore := peakRSS(t, dev.Pid())
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := dialKafka(t, dev.KafkaAddr)
			for {
				i := next.Add(1)
				if i > flood {
					return
				}
				join(conn, fmt.Sprintf("flood-%06d", i), "")
			}
		}()
	}
	wg.Wait()
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	t.Logf("%d first joins of distinct groups: peak RSS %d → %d MiB", flood, rssBefore>>20, peakRSS(t, dev.Pid())>>20)
	// The groups whose pending member was forgotten go at the next tick.
	await.NoError(t, 10*time.Second, "groups held for pending members to be bounded", func() error {
		listed, err := kadm.NewClient(cl).ListGroups(t.Context())
		if err != nil {
			return err
		}
		if n := len(listed.Groups()); n > 10_000+1 {
			return fmt.Errorf("%d groups held for their pending members, more than the 10,000 pending members allowed", n)
		}
		return nil
	})
	if code := join(first, "early", early.MemberID).ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Errorf("the member id handed out before %d newer ones: %v, want UNKNOWN_MEMBER_ID", flood, kerr.ErrorForCode(code))
	}
}
