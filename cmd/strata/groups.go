package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func newGroupsCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "List, describe, reset the offsets of and delete consumer and share groups",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(
		newGroupsListCmd(cf),
		newGroupsDescribeCmd(cf),
		newGroupsResetOffsetsCmd(cf),
		newGroupsDeleteCmd(cf),
	)
	return cmd
}

// groupSummaryJSON is one element of `groups list --output json`.
type groupSummaryJSON struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
	// Type is "classic", or "consumer" for a group of the consumer group
	// protocol (KIP-848).
	Type string `json:"type"`
}

func newGroupsListCmd(cf *clientFlags) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer and share groups, one name per line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				groups, err := c.ListGroups(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if output == outputJSON {
					out := make([]groupSummaryJSON, 0, len(groups))
					for _, g := range groups {
						out = append(out, groupSummaryJSON{Group: g.GetGroup(), State: g.GetState(), ProtocolType: g.GetProtocolType(),
							Coordinator: g.GetCoordinator(), Type: g.GetType()})
					}
					return writeJSON(w, out)
				}
				for _, g := range groups {
					fmt.Fprintln(w, g.GetGroup())
				}
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}

// groupPartitionJSON is one row of `groups describe`: a partition the group
// has a committed offset in or a member assigned. Its field names are a
// stable interface for scripts. Offsets and lag are -1 when unknown.
type groupPartitionJSON struct {
	Group         string `json:"group"`
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	CurrentOffset int64  `json:"current_offset"`
	LogEndOffset  int64  `json:"log_end_offset"`
	Lag           int64  `json:"lag"`
	ConsumerID    string `json:"consumer_id,omitempty"`
	Host          string `json:"host,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
}

// groupJSON is the output of `groups describe --output json`.
type groupJSON struct {
	Group      string               `json:"group"`
	State      string               `json:"state"`
	Members    int                  `json:"members"`
	Partitions []groupPartitionJSON `json:"partitions"`
	// Type is "share" for a share group, whose members are in
	// ShareMembers (several may hold one partition) and Partitions is
	// empty; "consumer" for a consumer-protocol group, with its group
	// epoch, assignor, and each member's epoch and target assignment;
	// omitted for classic groups.
	Type          string            `json:"type,omitempty"`
	ShareMembers  []shareMemberJSON `json:"share_members,omitempty"`
	GroupEpoch    int32             `json:"group_epoch,omitempty"`
	Assignor      string            `json:"assignor,omitempty"`
	MemberDetails []groupMemberJSON `json:"member_details,omitempty"`
}

// groupMemberJSON is a member of a consumer-protocol group.
type groupMemberJSON struct {
	MemberID    string             `json:"member_id"`
	InstanceID  string             `json:"instance_id,omitempty"`
	ClientID    string             `json:"client_id"`
	Host        string             `json:"host"`
	MemberEpoch int32              `json:"member_epoch"`
	Assignment  map[string][]int32 `json:"assignment"`
	Target      map[string][]int32 `json:"target_assignment"`
}

func newGroupsDescribeCmd(cf *clientFlags) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's offsets, lag and members per partition",
		Long: `Show, for each partition a consumer group has committed an offset in or has
assigned to a member, as Kafka's kafka-consumer-groups.sh --describe does:

  GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID

CURRENT-OFFSET is the committed offset and LOG-END-OFFSET the partition's high
watermark; "-" stands for a value that does not exist (no commit yet, no member).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				d, err := describeGroup(ctx, c, args[0])
				if err != nil {
					return err
				}
				if output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), d)
				}
				writeGroupDescribe(cmd.OutOrStdout(), d)
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}

// describeGroup gathers the group's members, committed offsets and the
// log end offsets of their partitions.
func describeGroup(ctx context.Context, c *client.Client, group string) (groupJSON, error) {
	d, err := c.DescribeGroup(ctx, group)
	if err != nil {
		return groupJSON{}, err
	}
	if d.GetProtocolType() == shareProtocolType {
		return describeShareGroup(d), nil
	}
	offs, err := c.FetchOffsets(ctx, group)
	if err != nil {
		return groupJSON{}, err
	}
	if d.GetState() == "Dead" && len(offs) == 0 {
		return groupJSON{}, fmt.Errorf("consumer group %q does not exist", group)
	}
	type tp struct {
		topic string
		p     int32
	}
	rows := map[tp]*groupPartitionJSON{}
	row := func(topic string, p int32) *groupPartitionJSON {
		k := tp{topic, p}
		if rows[k] == nil {
			rows[k] = &groupPartitionJSON{Group: group, Topic: topic, Partition: p, CurrentOffset: -1, LogEndOffset: -1, Lag: -1}
		}
		return rows[k]
	}
	for _, o := range offs {
		row(o.GetTopic(), o.GetPartition()).CurrentOffset = o.GetOffset()
	}
	for _, m := range d.GetMembers() {
		for _, a := range m.GetAssignment() {
			for _, p := range a.GetPartitions() {
				r := row(a.GetTopic(), p)
				r.ConsumerID, r.Host, r.ClientID = m.GetMemberId(), m.GetClientHost(), m.GetClientId()
			}
		}
	}
	byTopic := map[string][]int32{}
	for k := range rows {
		byTopic[k.topic] = append(byTopic[k.topic], k.p)
	}
	for topic, ps := range byTopic {
		ends, err := c.ListOffsets(ctx, topic, ps, client.OffsetLatest)
		if err != nil {
			// A deleted topic keeps its committed offsets: show them
			// without an end.
			continue
		}
		for _, p := range ps {
			r := rows[tp{topic, p}]
			r.LogEndOffset = ends[p]
			if r.CurrentOffset >= 0 {
				r.Lag = max(r.LogEndOffset-r.CurrentOffset, 0)
			}
		}
	}
	out := groupJSON{Group: group, State: d.GetState(), Members: len(d.GetMembers()), Partitions: []groupPartitionJSON{}, Type: d.GetType()}
	if d.GetType() == "consumer" {
		out.GroupEpoch, out.Assignor = d.GetGeneration(), d.GetProtocol()
		byTopic := func(tps []*stratav1.TopicPartitions) map[string][]int32 {
			m := map[string][]int32{}
			for _, tp := range tps {
				m[tp.GetTopic()] = tp.GetPartitions()
			}
			return m
		}
		for _, m := range d.GetMembers() {
			out.MemberDetails = append(out.MemberDetails, groupMemberJSON{
				MemberID: m.GetMemberId(), InstanceID: m.GetInstanceId(), ClientID: m.GetClientId(), Host: m.GetClientHost(),
				MemberEpoch: m.GetMemberEpoch(), Assignment: byTopic(m.GetAssignment()), Target: byTopic(m.GetTargetAssignment()),
			})
		}
	}
	keys := slices.SortedFunc(maps.Keys(rows), func(a, b tp) int {
		if a.topic != b.topic {
			return strings.Compare(a.topic, b.topic)
		}
		return int(a.p - b.p)
	})
	for _, k := range keys {
		out.Partitions = append(out.Partitions, *rows[k])
	}
	return out, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashNum(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// writeGroupDescribe prints d as kafka-consumer-groups.sh --describe does
// (kafka-share-groups.sh --describe --members for a share group).
func writeGroupDescribe(w io.Writer, d groupJSON) {
	if d.Type == shareProtocolType {
		writeShareGroupDescribe(w, d)
		return
	}
	if d.Type == "consumer" {
		fmt.Fprintf(w, "Consumer group '%s' uses the consumer group protocol: state %s, group epoch %d, assignor %s.\n",
			d.Group, d.State, d.GroupEpoch, dash(d.Assignor))
	}
	if d.Members == 0 {
		fmt.Fprintf(w, "Consumer group '%s' has no active members.\n", d.Group)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID")
	for _, r := range d.Partitions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Group, r.Topic, r.Partition,
			dashNum(r.CurrentOffset), dashNum(r.LogEndOffset), dashNum(r.Lag), dash(r.ConsumerID), dash(r.Host), dash(r.ClientID))
	}
	tw.Flush()
	if len(d.MemberDetails) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER-ID\tEPOCH\tASSIGNMENT\tTARGET-ASSIGNMENT")
	for _, m := range d.MemberDetails {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.MemberID, m.MemberEpoch, formatAssignment(m.Assignment), formatAssignment(m.Target))
	}
	tw.Flush()
}

// formatAssignment writes partitions as topic:0,1;other:2, or "-".
func formatAssignment(a map[string][]int32) string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(a)) {
		ps := make([]string, len(a[t]))
		for i, p := range a[t] {
			ps[i] = strconv.Itoa(int(p))
		}
		parts = append(parts, t+":"+strings.Join(ps, ","))
	}
	return dash(strings.Join(parts, ";"))
}

func newGroupsDeleteCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a consumer group without active members, and its offsets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteGroup(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deletion of requested consumer groups ('%s') was successful.\n", args[0])
				return nil
			})
		},
	}
}
