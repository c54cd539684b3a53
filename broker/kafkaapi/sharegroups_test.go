package kafkaapi_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func alterGroupConfigs(t *testing.T, cl kmsg.Requestor, group string, kvs ...string) int16 {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for i := 0; i < len(kvs); i += 2 {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = kvs[i], kmsg.StringPtr(kvs[i+1])
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Resources[0].ErrorCode
}

// TestGroupConfigsBeforeTheGroupExists sets share-group configs on a group
// nobody has joined, reads them back with DescribeConfigs, and sees
// values outside the broker's bounds refused.
func TestGroupConfigsBeforeTheGroupExists(t *testing.T) {
	addr, _ := startBroker(t, nil)
	cl := newClient(t, addr)
	if code := alterGroupConfigs(t, cl, "sg", "share.auto.offset.reset", "earliest", "share.record.lock.duration.ms", "15000"); code != 0 {
		t.Fatalf("IncrementalAlterConfigs: %v", kerr.ErrorForCode(code))
	}
	for _, bad := range [][]string{
		{"share.record.lock.duration.ms", "1000"},
		{"share.auto.offset.reset", "none"},
		{"share.auto.offset.reset", "by_duration:-PT1H"},
		{"share.no.such.config", "1"},
	} {
		if code := alterGroupConfigs(t, cl, "sg", bad...); code != kerr.InvalidConfig.Code {
			t.Errorf("setting %v: %v, want INVALID_CONFIG", bad, kerr.ErrorForCode(code))
		}
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "sg"
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		got[c.Name] = c
	}
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("DescribeConfigs: %v", kerr.ErrorForCode(code))
	}
	for name, want := range map[string]string{
		"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "15000",
		"share.session.timeout.ms": "45000", "share.heartbeat.interval.ms": "5000", "share.isolation.level": "read_uncommitted",
	} {
		c, ok := got[name]
		if !ok || c.Value == nil || *c.Value != want {
			t.Errorf("%s = %+v, want %s", name, c, want)
		}
	}
	if c := got["share.record.lock.duration.ms"]; c.Source != kmsg.ConfigSourceGroupConfig || c.ConfigType != kmsg.ConfigTypeInt {
		t.Errorf("an override is described as %+v", c)
	}
	if c := got["share.session.timeout.ms"]; c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("a default is described as %+v", c)
	}
}

func shareHeartbeat(t *testing.T, cl kmsg.Requestor, member string, epoch int32, topics ...string) *kmsg.ShareGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = "sg", member, epoch, topics
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func assigned(resp *kmsg.ShareGroupHeartbeatResponse) int {
	n := 0
	if resp.Assignment != nil {
		for _, tp := range resp.Assignment.TopicPartitions {
			n += len(tp.Partitions)
		}
	}
	return n
}

// TestShareGroupMembership joins two share members, sees the partitions
// split between them and described, lists the group, and leaves.
func TestShareGroupMembership(t *testing.T) {
	addr, _ := startBroker(t, nil)
	ctx := ctxFor(t)
	cl := newClient(t, addr)
	adm := kadm.NewClient(cl)
	created, err := adm.CreateTopic(ctx, 3, 1, nil, "st")
	if err != nil || created.Err != nil {
		t.Fatal(err, created.Err)
	}

	if resp := shareHeartbeat(t, cl, "m1", 1); resp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("heartbeat of an unknown group: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	m1 := shareHeartbeat(t, cl, "m1", 0, "st")
	if m1.ErrorCode != 0 || m1.MemberEpoch != 1 || assigned(m1) != 3 || m1.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("first member: %+v", m1)
	}
	if m1.Assignment.TopicPartitions[0].TopicID != created.ID {
		t.Fatalf("assigned topic id %x, want %x", m1.Assignment.TopicPartitions[0].TopicID, created.ID)
	}
	m2 := shareHeartbeat(t, cl, "m2", 0, "st")
	if m2.ErrorCode != 0 || m2.MemberEpoch != 2 || assigned(m2) != 1 {
		t.Fatalf("second member: %+v", m2)
	}
	m1 = shareHeartbeat(t, cl, "m1", 1)
	if m1.ErrorCode != 0 || m1.MemberEpoch != 2 || assigned(m1) != 2 {
		t.Fatalf("first member after the second joined: %+v", m1)
	}
	if resp := shareHeartbeat(t, cl, "m1", 1); resp.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("old epoch: %v, want FENCED_MEMBER_EPOCH", kerr.ErrorForCode(resp.ErrorCode))
	}

	dreq := kmsg.NewPtrShareGroupDescribeRequest()
	dreq.GroupIDs = []string{"sg", "nope"}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	g := dresp.Groups[0]
	if g.ErrorCode != 0 || g.GroupState != "Stable" || g.GroupEpoch != 2 || g.Assignor != "simple" || len(g.Members) != 2 {
		t.Fatalf("ShareGroupDescribe: %+v", g)
	}
	if dresp.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("describing an unknown group: %v", kerr.ErrorForCode(dresp.Groups[1].ErrorCode))
	}

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := listed["sg"]; !ok || l.ProtocolType != "share" || l.State != "Stable" {
		t.Fatalf("ListGroups: %+v", listed)
	}

	// A classic group's id is not a share group's.
	oreq := kmsg.NewPtrOffsetCommitRequest()
	oreq.Group, oreq.Generation = "classic", -1
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = "st"
	op := kmsg.NewOffsetCommitRequestTopicPartition()
	op.Offset = 0
	ot.Partitions = append(ot.Partitions, op)
	oreq.Topics = append(oreq.Topics, ot)
	if oresp, err := oreq.RequestWith(ctx, cl); err != nil || oresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("committing for a classic group: %+v, %v", oresp, err)
	}
	creq := kmsg.NewPtrShareGroupHeartbeatRequest()
	creq.GroupID, creq.MemberID, creq.SubscribedTopicNames = "classic", "m", []string{"st"}
	cresp, err := creq.RequestWith(ctx, cl)
	if err != nil || cresp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("share member joining a classic group: %v, %v", cresp, err)
	}

	if resp := shareHeartbeat(t, cl, "m1", -1); resp.ErrorCode != 0 || resp.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", resp)
	}
	m2 = shareHeartbeat(t, cl, "m2", 2)
	if m2.ErrorCode != 0 || m2.MemberEpoch != 3 || assigned(m2) != 3 {
		t.Fatalf("remaining member: %+v", m2)
	}

	// DeleteGroups: refused while a member remains, then the group is gone.
	deleteGroup := func() int16 {
		t.Helper()
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = []string{"sg"}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Groups[0].ErrorCode
	}
	if code := deleteGroup(); code != kerr.NonEmptyGroup.Code {
		t.Fatalf("deleting a share group with a member: %v, want NON_EMPTY_GROUP", kerr.ErrorForCode(code))
	}
	if resp := shareHeartbeat(t, cl, "m2", -1); resp.ErrorCode != 0 {
		t.Fatalf("leave: %+v", resp)
	}
	if code := deleteGroup(); code != 0 {
		t.Fatalf("deleting an empty share group: %v", kerr.ErrorForCode(code))
	}
	if code := deleteGroup(); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("deleting it again: %v, want GROUP_ID_NOT_FOUND", kerr.ErrorForCode(code))
	}
	if resp := shareHeartbeat(t, cl, "m2", 3); resp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("heartbeat of the deleted group: %v, want GROUP_ID_NOT_FOUND", kerr.ErrorForCode(resp.ErrorCode))
	}
}
