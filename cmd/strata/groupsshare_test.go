package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// TestGroupsShowShareGroups joins two share members through the Kafka
// protocol and sees the group listed and its members described.
func TestGroupsShowShareGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	addrs := testenv.StartInProcessAddrs(t, nil)
	bs := "--bootstrap-server=" + addrs.GRPC.String()
	mustStrata(t, "", "topics", "create", "st", "--partitions", "3", bs)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs.Kafka.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, m := range []string{"m1", "m2"} {
		req := kmsg.NewPtrShareGroupHeartbeatRequest()
		req.GroupID, req.MemberID, req.SubscribedTopicNames = "sg", m, []string{"st"}
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("join %s: %+v, %v", m, resp, err)
		}
	}
	if out := mustStrata(t, "", "groups", "list", bs); out != "sg\n" {
		t.Errorf("list: %q", out)
	}
	out := mustStrata(t, "", "groups", "describe", "sg", bs)
	want := []string{"sg m1 - kgo 2 st:0,2", "sg m2 - kgo 1 st:1"}
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[0] == "sg" {
			rows = append(rows, strings.Join(f, " "))
		}
	}
	// The host is the client's address; compare the rest.
	for i := range rows {
		f := strings.Fields(rows[i])
		f[2] = "-"
		rows[i] = strings.Join(f, " ")
	}
	if strings.Join(rows, "|") != strings.Join(want, "|") {
		t.Errorf("describe rows %q, want %q in:\n%s", rows, want, out)
	}
	var dj groupJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "groups", "describe", "sg", "-o", "json", bs)), &dj); err != nil {
		t.Fatal(err)
	}
	if dj.Type != "share" || dj.State != "Stable" || len(dj.ShareMembers) != 2 || len(dj.ShareMembers[1].Assignment) != 1 {
		t.Errorf("describe json: %+v", dj)
	}
}
