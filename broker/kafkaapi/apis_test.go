package kafkaapi

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/sharegroup"
	"github.com/strata-broker/strata/metastore"
)

// advertised is the protocol contract: the API keys and version ranges
// ApiVersions lists, in the order it lists them. Clients choose features
// from these ranges, so a change here is a change of what the broker
// promises, never a side effect of moving code around.
var advertised = []keyRange{
	{0, 0, 12}, // Produce
	{1, 4, 17}, // Fetch
	{2, 0, 10}, // ListOffsets
	{3, 0, 13}, // Metadata
	{8, 0, 9},  // OffsetCommit
	{9, 0, 9},  // OffsetFetch
	{10, 0, 4}, // FindCoordinator
	{11, 0, 9}, // JoinGroup
	{12, 0, 4}, // Heartbeat
	{13, 0, 5}, // LeaveGroup
	{14, 0, 5}, // SyncGroup
	{15, 0, 5}, // DescribeGroups
	{16, 0, 5}, // ListGroups
	{17, 0, 1}, // SaslHandshake
	{18, 0, 3}, // ApiVersions
	{19, 0, 7}, // CreateTopics
	{20, 0, 6}, // DeleteTopics
	{21, 0, 2}, // DeleteRecords
	{22, 0, 4}, // InitProducerId
	{23, 0, 4}, // OffsetForLeaderEpoch
	{24, 0, 3}, // AddPartitionsToTxn
	{25, 0, 4}, // AddOffsetsToTxn
	{26, 0, 4}, // EndTxn
	{28, 0, 4}, // TxnOffsetCommit
	{29, 0, 3}, // DescribeAcls
	{30, 0, 3}, // CreateAcls
	{31, 0, 3}, // DeleteAcls
	{32, 0, 4}, // DescribeConfigs
	{33, 0, 2}, // AlterConfigs
	{35, 0, 5}, // DescribeLogDirs
	{36, 0, 2}, // SaslAuthenticate
	{37, 0, 3}, // CreatePartitions
	{43, 0, 2}, // ElectLeaders
	{45, 0, 1}, // AlterPartitionReassignments
	{46, 0, 0}, // ListPartitionReassignments
	{42, 0, 2}, // DeleteGroups
	{47, 0, 0}, // OffsetDelete
	{44, 0, 1}, // IncrementalAlterConfigs
	{50, 0, 0}, // DescribeUserScramCredentials
	{51, 0, 0}, // AlterUserScramCredentials
	{60, 0, 2}, // DescribeCluster
	{61, 0, 0}, // DescribeProducers
	{65, 0, 0}, // DescribeTransactions
	{66, 0, 1}, // ListTransactions
	{68, 0, 1}, // ConsumerGroupHeartbeat
	{69, 0, 1}, // ConsumerGroupDescribe
	{76, 1, 1}, // ShareGroupHeartbeat
	{77, 1, 1}, // ShareGroupDescribe
	{78, 1, 2}, // ShareFetch
	{79, 1, 2}, // ShareAcknowledge
	{90, 0, 1}, // DescribeShareGroupOffsets
	{91, 0, 0}, // AlterShareGroupOffsets
	{92, 0, 0}, // DeleteShareGroupOffsets
}

type keyRange struct{ key, min, max int16 }

// groupAPIs are the keys answered only by a broker with a group
// coordinator.
var groupAPIs = []int16{8, 9, 10, 11, 12, 13, 14, 15, 16, 28, 42, 47, 68, 69, 76, 77}

// nullGroups answers every group call at once, so that each group API
// can be seen to be answered.
type nullGroups struct{}

func (nullGroups) Join(context.Context, group.JoinRequest) (group.JoinResult, error) {
	return group.JoinResult{}, group.ErrUnknownMemberID
}
func (nullGroups) Sync(context.Context, group.SyncRequest) ([]byte, error) { return nil, nil }
func (nullGroups) Heartbeat(context.Context, string, string, int32) error  { return nil }
func (nullGroups) Leave(_ context.Context, _ string, ids, _ []string) []error {
	return make([]error, len(ids))
}
func (nullGroups) CommitOffsets(context.Context, string, string, int32, []metastore.OffsetCommit) error {
	return nil
}
func (nullGroups) FetchOffsets(context.Context, string) ([]metastore.OffsetCommit, error) {
	return nil, nil
}
func (nullGroups) Describe(context.Context, string) (group.Description, error) {
	return group.Description{}, group.ErrNotCoordinator
}
func (nullGroups) List(context.Context) ([]group.Summary, error)                  { return nil, nil }
func (nullGroups) Delete(context.Context, string) error                           { return nil }
func (nullGroups) DeleteOffsets(context.Context, string, string, []int32) error   { return nil }
func (nullGroups) CommitTxnOffsets(context.Context, group.TxnCommitRequest) error { return nil }
func (nullGroups) ConsumerGroupHeartbeat(context.Context, group.ConsumerHeartbeat) (group.ConsumerHeartbeatResult, error) {
	return group.ConsumerHeartbeatResult{}, group.ErrUnknownMemberID
}
func (nullGroups) DescribeConsumerGroup(context.Context, string) (group.ConsumerDescription, error) {
	return group.ConsumerDescription{}, group.ErrGroupIDNotFound
}
func (nullGroups) CheckConsumerMember(context.Context, string, string, int32) error { return nil }
func (nullGroups) FetchStableOffsets(context.Context, string) ([]metastore.OffsetCommit, []metastore.TopicPartition, error) {
	return nil, nil, nil
}

// nullShareGroups answers every share-group call at once.
type nullShareGroups struct{}

func (nullShareGroups) Heartbeat(context.Context, sharegroup.HeartbeatRequest) (sharegroup.HeartbeatResult, error) {
	return sharegroup.HeartbeatResult{}, nil
}
func (nullShareGroups) Describe(context.Context, string) (metastore.ShareGroupMeta, error) {
	return metastore.ShareGroupMeta{}, sharegroup.ErrGroupIDNotFound
}
func (nullShareGroups) List(context.Context) ([]metastore.ShareGroupMeta, error) { return nil, nil }
func (nullShareGroups) Delete(context.Context, string, func(context.Context, string) error) error {
	return sharegroup.ErrGroupIDNotFound
}

// serveNull serves a frontend over nullCore on a loopback port.
func serveNull(t *testing.T, groups Groups) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeID: 1, Groups: groups}
	if groups != nil {
		cfg.ShareGroups = nullShareGroups{}
	}
	s := New(nullCore{}, cfg)
	go s.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return lis.Addr().String()
}

// roundTrip sends one request on a fresh connection and returns the
// response body (after the correlation id), or the read error when the
// broker closed the connection instead of answering.
func roundTrip(t *testing.T, addr string, req kmsg.Request, version int16) ([]byte, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req.SetVersion(version)
	if p, ok := req.(*kmsg.ProduceRequest); ok {
		p.Acks = -1 // acks=0 gets no answer
	}
	if _, err := nc.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("t")).AppendRequest(nil, req, 9)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(nc, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(nc, body); err != nil {
		return nil, err
	}
	if id := int32(binary.BigEndian.Uint32(body)); id != 9 {
		t.Fatalf("correlation id %d, want 9", id)
	}
	return body[4:], nil
}

func TestApiVersionsListsTheContract(t *testing.T) {
	for _, groups := range []Groups{nil, nullGroups{}} {
		addr := serveNull(t, groups)
		for v := int16(0); v <= 3; v++ {
			body, err := roundTrip(t, addr, kmsg.NewPtrApiVersionsRequest(), v)
			if err != nil {
				t.Fatalf("ApiVersions v%d: %v", v, err)
			}
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.SetVersion(v)
			if err := resp.ReadFrom(body); err != nil {
				t.Fatalf("ApiVersions v%d response: %v", v, err)
			}
			if resp.ErrorCode != 0 {
				t.Fatalf("ApiVersions v%d: error %d", v, resp.ErrorCode)
			}
			got := make([]keyRange, len(resp.ApiKeys))
			for i, k := range resp.ApiKeys {
				got[i] = keyRange{k.ApiKey, k.MinVersion, k.MaxVersion}
			}
			if !slices.Equal(got, advertised) {
				t.Fatalf("ApiVersions v%d (groups %v) lists\n%v\nwant\n%v", v, groups != nil, got, advertised)
			}
		}
	}
}

// Every advertised version is answered, the version above the range
// closes the connection (ApiVersions aside, which says what it speaks),
// and without a group coordinator the group APIs close it too.
func TestAdvertisedVersionsAreServed(t *testing.T) {
	for _, groups := range []Groups{nil, nullGroups{}} {
		addr := serveNull(t, groups)
		for _, a := range advertised {
			name := kmsg.NameForKey(a.key)
			noCoordinator := groups == nil && slices.Contains(groupAPIs, a.key)
			for _, v := range []int16{a.min, a.max} {
				_, err := roundTrip(t, addr, kmsg.RequestForKey(a.key), v)
				switch {
				case noCoordinator && err == nil:
					t.Errorf("%s v%d answered without a group coordinator", name, v)
				case !noCoordinator && err != nil:
					t.Errorf("%s v%d (groups %v): %v", name, v, groups != nil, err)
				}
			}
			if a.key == apiVersionsKey {
				continue
			}
			above := kmsg.RequestForKey(a.key)
			if a.max+1 > above.MaxVersion() {
				continue
			}
			if _, err := roundTrip(t, addr, above, a.max+1); !errors.Is(err, io.EOF) && !isClosed(err) {
				t.Errorf("%s v%d: connection not closed (%v)", name, a.max+1, err)
			}
		}
	}
}

func TestApiVersionsAboveOursSaysUnsupported(t *testing.T) {
	addr := serveNull(t, nil)
	body, err := roundTrip(t, addr, kmsg.NewPtrApiVersionsRequest(), 4)
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("response is not v0: %v", err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != len(advertised) {
		t.Fatalf("error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

func isClosed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// Each API lives in the file named by its key, which opens by naming the
// API and the versions it registers: the comment is what a reader trusts,
// so it must not drift from the registration.
func TestEachAPIHasItsFile(t *testing.T) {
	s := New(nullCore{}, Config{})
	header := regexp.MustCompile(`^// (\w+) \(key (\d+)\), versions? (\d+)(?:-(\d+))?\.`)
	files, err := filepath.Glob("[0-9][0-9]_*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int16]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		key, _ := strconv.Atoi(name[:2])
		a, ok := s.lookup(int16(key))
		if !ok {
			t.Errorf("%s: key %d is not registered", name, key)
			continue
		}
		seen[a.key] = true
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(src), "\n")
		m := header.FindStringSubmatch(first)
		if m == nil {
			t.Errorf("%s opens with %q, want \"// Name (key N), versions A-B.\"", name, first)
			continue
		}
		hi := m[4]
		if hi == "" {
			hi = m[3]
		}
		want := []string{strings.ToLower(kmsg.NameForKey(a.key)), strconv.Itoa(int(a.key)), strconv.Itoa(int(a.min)), strconv.Itoa(int(a.max))}
		// Kafka spells it InitProducerId, kmsg InitProducerID; kmsg names
		// AlterPartitionReassignments AlterPartitionAssignments.
		if want[0] == "alterpartitionassignments" {
			want[0] = "alterpartitionreassignments"
		}
		if got := []string{strings.ToLower(m[1]), m[2], m[3], hi}; !slices.Equal(got, want) {
			t.Errorf("%s says %v (name, key, min, max), registered %v", name, got, want)
		}
		if !strings.Contains(string(src), "func (s *Server) ") || !strings.Contains(string(src), "api{key: ") {
			t.Errorf("%s does not register its API", name)
		}
	}
	for _, a := range s.apis {
		if !seen[a.key] {
			t.Errorf("%s (key %d) has no file named by its key", kmsg.NameForKey(a.key), a.key)
		}
	}
}
