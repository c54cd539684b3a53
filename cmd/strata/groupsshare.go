package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// shareProtocolType is the protocol type the broker reports for share
// groups.
const shareProtocolType = "share"

// shareMemberJSON is one member of a share group in `groups describe`.
type shareMemberJSON struct {
	ConsumerID string                `json:"consumer_id"`
	Host       string                `json:"host,omitempty"`
	ClientID   string                `json:"client_id,omitempty"`
	Assignment []shareAssignmentJSON `json:"assignment"`
}

type shareAssignmentJSON struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// describeShareGroup is a share group's description: its members and
// their partitions. The share-partition start offsets are kept by the
// partition leaders and not shown here.
func describeShareGroup(d *stratav1.DescribeGroupResponse) groupJSON {
	out := groupJSON{Group: d.GetGroup(), State: d.GetState(), Members: len(d.GetMembers()), Partitions: []groupPartitionJSON{}, Type: shareProtocolType}
	for _, m := range d.GetMembers() {
		sm := shareMemberJSON{ConsumerID: m.GetMemberId(), Host: m.GetClientHost(), ClientID: m.GetClientId(), Assignment: []shareAssignmentJSON{}}
		for _, a := range m.GetAssignment() {
			sm.Assignment = append(sm.Assignment, shareAssignmentJSON{Topic: a.GetTopic(), Partitions: a.GetPartitions()})
		}
		out.ShareMembers = append(out.ShareMembers, sm)
	}
	return out
}

// writeShareGroupDescribe prints a share group as kafka-share-groups.sh
// --describe --members does.
func writeShareGroupDescribe(w io.Writer, d groupJSON) {
	if d.Members == 0 {
		fmt.Fprintf(w, "Share group '%s' has no active members.\n", d.Group)
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tCONSUMER-ID\tHOST\tCLIENT-ID\t#PARTITIONS\tASSIGNMENT")
	for _, m := range d.ShareMembers {
		n := 0
		var parts []string
		for _, a := range m.Assignment {
			n += len(a.Partitions)
			ps := make([]string, len(a.Partitions))
			for i, p := range a.Partitions {
				ps[i] = strconv.Itoa(int(p))
			}
			parts = append(parts, a.Topic+":"+strings.Join(ps, ","))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.Group, m.ConsumerID, dash(m.Host), dash(m.ClientID), n, dash(strings.Join(parts, ";")))
	}
	tw.Flush()
}
