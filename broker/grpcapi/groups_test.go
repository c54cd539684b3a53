package grpcapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/internal/await"
)

// startGroupBroker runs one broker with embedded etcd whose groups start
// their first generation at once.
func startGroupBroker(t *testing.T) stratav1.StrataClient {
	t.Helper()
	_, c, _ := serveBroker(t, testBroker{settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	return c
}

// member is one ConsumeGroup stream; its assignments arrive on assigned.
type member struct {
	cancel   context.CancelFunc
	assigned chan *stratav1.ConsumeGroupResponse
	done     chan error
}

func join(t *testing.T, c stratav1.StrataClient, group string, topics ...string) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stream, err := c.ConsumeGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stratav1.ConsumeGroupRequest{Group: group, Topics: topics, ClientId: "test", SessionTimeoutMs: 6000}); err != nil {
		t.Fatal(err)
	}
	m := &member{cancel: cancel, assigned: make(chan *stratav1.ConsumeGroupResponse, 16), done: make(chan error, 1)}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				m.done <- err
				return
			}
			m.assigned <- resp
		}
	}()
	go func() { // heartbeats
		for ctx.Err() == nil {
			if stream.Send(&stratav1.ConsumeGroupRequest{}) != nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(m.leave)
	return m
}

func (m *member) leave() {
	m.cancel()
	<-m.done
	m.done <- context.Canceled // for a second leave
}

// waitPartitions waits for an assignment of exactly n partitions.
func (m *member) waitPartitions(t *testing.T, n int) *stratav1.ConsumeGroupResponse {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case a := <-m.assigned:
			got := 0
			for _, tp := range a.GetPartitions() {
				got += len(tp.GetPartitions())
			}
			if got == n {
				return a
			}
		case err := <-m.done:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatalf("no assignment of %d partitions within 30s", n)
		}
	}
}

func reasonOf(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if pe, ok := d.(*stratav1.PartitionError); ok {
			return pe.GetReason()
		}
	}
	return ""
}

func TestConsumeGroupSplitsPartitionsAndRebalances(t *testing.T) {
	c := startGroupBroker(t)
	ctx := t.Context()
	createTopic(t, c, "orders", 4)

	a := join(t, c, "g1", "orders")
	a.waitPartitions(t, 4)
	b := join(t, c, "g1", "orders")
	ab := a.waitPartitions(t, 2)
	bb := b.waitPartitions(t, 2)
	if ab.GetGeneration() != bb.GetGeneration() {
		t.Fatalf("generations %d and %d", ab.GetGeneration(), bb.GetGeneration())
	}
	all := slices.Concat(ab.GetPartitions()[0].GetPartitions(), bb.GetPartitions()[0].GetPartitions())
	slices.Sort(all)
	if !slices.Equal(all, []int32{0, 1, 2, 3}) {
		t.Fatalf("partitions %v and %v", ab.GetPartitions(), bb.GetPartitions())
	}

	d, err := c.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetState() != "Stable" || d.GetProtocolType() != ProtocolType || len(d.GetMembers()) != 2 || len(d.GetMembers()[0].GetAssignment()) != 1 {
		t.Fatalf("describe: %v", d)
	}

	// Commit as a member, then read back.
	offs := []*stratav1.GroupOffset{{Topic: "orders", Partition: ab.GetPartitions()[0].GetPartitions()[0], Offset: 7}}
	if _, err := c.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "g1", MemberId: ab.GetMemberId(), Generation: ab.GetGeneration(), Offsets: offs}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "g1", MemberId: ab.GetMemberId(), Generation: ab.GetGeneration() - 1, Offsets: offs})
	if reasonOf(err) != reasonIllegalGeneration {
		t.Errorf("commit of an old generation: %v", err)
	}
	fo, err := c.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fo.GetOffsets()) != 1 || fo.GetOffsets()[0].GetOffset() != 7 {
		t.Fatalf("fetch offsets: %v", fo)
	}

	// Refused while there are members.
	_, err = c.ResetOffsets(ctx, &stratav1.ResetOffsetsRequest{Group: "g1", Topic: "orders", Offsets: []*stratav1.GroupOffset{{Partition: 0, Offset: 0}}})
	if status.Code(err) != codes.FailedPrecondition || reasonOf(err) != reasonNonEmptyGroup {
		t.Errorf("reset with members: %v", err)
	}
	if _, err := c.DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: "g1"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("delete with members: %v", err)
	}

	// One leaves: the other gets all four.
	b.leave()
	a.waitPartitions(t, 4)
	a.leave()

	waitEmpty(t, c, "g1")
	if _, err := c.ResetOffsets(ctx, &stratav1.ResetOffsetsRequest{Group: "g1", Topic: "orders", Offsets: []*stratav1.GroupOffset{{Partition: 0, Offset: 0}, {Partition: 3, Offset: 0}}}); err != nil {
		t.Fatal(err)
	}
	lg, err := c.ListGroups(ctx, &stratav1.ListGroupsRequest{})
	if err != nil || len(lg.GetGroups()) != 1 || lg.GetGroups()[0].GetGroup() != "g1" || lg.GetGroups()[0].GetCoordinator() != 1 {
		t.Fatalf("list groups: %v, %v", lg, err)
	}
	if _, err := c.DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: "g1"}); err != nil {
		t.Fatal(err)
	}
	if fo, err := c.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: "g1"}); err != nil || len(fo.GetOffsets()) != 0 {
		t.Fatalf("offsets after delete: %v, %v", fo, err)
	}
	fc, err := c.FindCoordinator(ctx, &stratav1.FindCoordinatorRequest{Group: "g1"})
	if err != nil || fc.GetCoordinator().GetNodeId() != 1 || fc.GetCoordinator().GetGrpcAddr() == "" {
		t.Fatalf("find coordinator: %v, %v", fc, err)
	}
}

func waitEmpty(t *testing.T, c stratav1.StrataClient, group string) {
	t.Helper()
	await.NoError(t, 30*time.Second, fmt.Sprintf("group %q to have no members", group), func() error {
		d, err := c.DescribeGroup(t.Context(), &stratav1.DescribeGroupRequest{Group: group})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.GetMembers()) != 0 {
			return fmt.Errorf("group %q still has members: %v", group, d)
		}
		return nil
	})
}

func TestConsumeGroupRefusesBadRequests(t *testing.T) {
	c := startGroupBroker(t)
	stream, err := c.ConsumeGroup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stratav1.ConsumeGroupRequest{Group: "g"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("no topics: %v", err)
	}
	_, err = c.CommitOffsets(t.Context(), &stratav1.CommitOffsetsRequest{Group: "", Offsets: nil})
	if status.Code(err) != codes.InvalidArgument || reasonOf(err) != "INVALID_GROUP_ID" {
		t.Errorf("empty group: %v", err)
	}
}

// Offset metadata over offset.metadata.max.bytes is refused and nothing of
// the request is written, as the gRPC API answers a request as a whole.
func TestCommitOffsetsRefusesLongMetadata(t *testing.T) {
	_, c, _ := serveBroker(t, testBroker{settings: map[string]string{"offset.metadata.max.bytes": "16"}})
	ctx := t.Context()
	createTopic(t, c, "t", 2)
	offs := []*stratav1.GroupOffset{
		{Topic: "t", Partition: 0, Offset: 1, Metadata: strings.Repeat("m", 17)},
	}
	_, err := c.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "g", Offsets: offs})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "offset.metadata.max.bytes") {
		t.Fatalf("17 bytes of metadata with offset.metadata.max.bytes=16: %v", err)
	}
	got, err := c.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: "g"})
	if err != nil || len(got.GetOffsets()) != 0 {
		t.Fatalf("offsets stored: %v, %v", got.GetOffsets(), err)
	}
	offs[0].Metadata = strings.Repeat("m", 16)
	if _, err := c.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "g", Offsets: offs}); err != nil {
		t.Fatalf("16 bytes of metadata: %v", err)
	}
}
