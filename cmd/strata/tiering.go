package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func newTieringCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "tiering",
		Short: "Inspect tiered storage: what is local, what is in the object store",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newTieringStatusCmd(cf))
	return cmd
}

func newTieringStatusCmd(cf *clientFlags) *cobra.Command {
	var (
		output outputFormat
		human  bool
	)
	cmd := &cobra.Command{
		Use:   "status [TOPIC]",
		Short: "Show each partition's local and remote offsets and bytes and its upload backlog",
		Long: `Show, for each partition of TOPIC (every topic when none is given), what its
leader holds on local disk and in the object store, as the leader sees it:

  LOCAL-START, LOCAL-END    the local log's first offset and log end offset
  LOCAL-BYTES               bytes of the local log
  REMOTE-START, REMOTE-END  the remote log start and the offset after the last
                            remote segment
  REMOTE-BYTES, SEGMENTS    bytes and number of remote segments
  BACKLOG-BYTES             bytes of sealed segments not uploaded yet

"-" marks what does not apply: no remote segments yet, a topic that is not
tiered (a note names those: they need remote.storage.enable=true), or a
manifest the leader could not read. Bytes are raw numbers unless --human.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := ""
			if len(args) == 1 {
				topic = args[0]
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				parts, err := c.TieringStatus(ctx, topic)
				if err != nil {
					return err
				}
				if output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), tieringJSONOf(parts))
				}
				writeTieringStatus(cmd.OutOrStdout(), parts, human)
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().BoolVar(&human, "human", false, "print bytes as KiB, MiB, GiB")
	return cmd
}

// writeTieringStatus prints the status table, then a note for each topic
// that is not tiered.
func writeTieringStatus(w io.Writer, parts []*stratav1.PartitionTiering, human bool) {
	bytes := dashNum
	if human {
		bytes = humanBytes
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tLOCAL-START\tLOCAL-END\tLOCAL-BYTES\tREMOTE-START\tREMOTE-END\tREMOTE-BYTES\tSEGMENTS\tBACKLOG-BYTES")
	var untiered []string
	for _, p := range parts {
		backlog := p.GetUploadBacklogBytes()
		if !p.GetRemoteEnabled() {
			backlog = -1 // nothing is uploaded: not a backlog
			if len(untiered) == 0 || untiered[len(untiered)-1] != p.GetTopic() {
				untiered = append(untiered, p.GetTopic())
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.GetTopic(), p.GetPartition(), p.GetLeader(),
			p.GetLocalStartOffset(), p.GetLocalEndOffset(), bytes(p.GetLocalBytes()),
			dashNum(p.GetRemoteStartOffset()), dashNum(p.GetRemoteEndOffset()), bytes(p.GetRemoteBytes()),
			dashNum(p.GetRemoteSegments()), bytes(backlog))
	}
	tw.Flush()
	for _, t := range untiered {
		fmt.Fprintf(w, "Note: topic %s is not tiered (remote.storage.enable is not true): it has no remote data.\n", t)
	}
}

// humanBytes prints n in binary units, "-" when negative.
func humanBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, unit := float64(n)/1024, 0
	for v >= 1024 && unit < 4 {
		v /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[unit])
}

// tieringJSON is one element of `tiering status --output json`. Its field
// names are a stable interface for scripts: add fields, never rename them.
// Offsets and sizes are -1 where the table prints "-".
type tieringJSON struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Leader        int32  `json:"leader"`
	LeaderEpoch   int32  `json:"leader_epoch"`
	RemoteEnabled bool   `json:"remote_enabled"`
	LocalStart    int64  `json:"local_start_offset"`
	LocalEnd      int64  `json:"local_end_offset"`
	LocalBytes    int64  `json:"local_bytes"`
	RemoteStart   int64  `json:"remote_start_offset"`
	RemoteEnd     int64  `json:"remote_end_offset"`
	RemoteBytes   int64  `json:"remote_bytes"`
	Segments      int64  `json:"remote_segments"`
	Backlog       int64  `json:"upload_backlog_bytes"`
	HighWatermark int64  `json:"high_watermark"`
	LogStart      int64  `json:"log_start_offset"`
}

func tieringJSONOf(parts []*stratav1.PartitionTiering) []tieringJSON {
	out := make([]tieringJSON, 0, len(parts))
	for _, p := range parts {
		out = append(out, tieringJSON{
			Topic: p.GetTopic(), Partition: p.GetPartition(), Leader: p.GetLeader(), LeaderEpoch: p.GetLeaderEpoch(),
			RemoteEnabled: p.GetRemoteEnabled(),
			LocalStart:    p.GetLocalStartOffset(), LocalEnd: p.GetLocalEndOffset(), LocalBytes: p.GetLocalBytes(),
			RemoteStart: p.GetRemoteStartOffset(), RemoteEnd: p.GetRemoteEndOffset(),
			RemoteBytes: p.GetRemoteBytes(), Segments: p.GetRemoteSegments(),
			Backlog: p.GetUploadBacklogBytes(), HighWatermark: p.GetHighWatermark(), LogStart: p.GetLogStartOffset(),
		})
	}
	return out
}
