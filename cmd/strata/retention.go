package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func newRetentionCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "See what time and size retention would delete",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newRetentionPreviewCmd(cf))
	return cmd
}

func newRetentionPreviewCmd(cf *clientFlags) *cobra.Command {
	var (
		set, del []string
		output   outputFormat
		human    bool
	)
	cmd := &cobra.Command{
		Use:   "preview TOPIC [--config key=value]... [--delete-config key]...",
		Short: "Show what retention would delete now if the topic's configs were altered, without altering or deleting anything",
		Long: `Show what retention would delete now from each partition of TOPIC if its
config overrides were altered as given (the same flags as 'strata topics
alter'), without altering or deleting anything. With no flags, the current
configs are previewed. Each partition's leader answers, applying the rules
its retention worker applies:

  retention.bytes  the oldest segments go while the log stays at least this
                   large without them
  retention.ms     the oldest segments go while their newest record is older
  both stop at the first segment they keep, never touch records at or above
  the high watermark, and apply only when cleanup.policy includes delete.

Tiered topics (remote.storage.enable=true) have two rows per partition:
remote (retention.* over the whole log) and local (local.retention.*, only
segments already in the object store, and what remote deletion takes).

  SEGMENTS, BYTES    what would be deleted from the tier
  OFFSETS            how many offsets the tier's start would move
  START, NEW-START   the tier's start offset now and after

Retention runs every log.retention.check.interval.ms (30 s by default) on
topics without remote storage, every remote.log.manager.task.interval.ms on
tiered ones.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseConfigs("config", set)
			if err != nil {
				return err
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				pv, err := c.PreviewRetention(ctx, args[0], cfg, del)
				if err != nil {
					return err
				}
				if output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), retentionJSONOf(args[0], pv))
				}
				writeRetentionPreview(cmd.OutOrStdout(), args[0], pv, human)
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "config", nil, "config override to preview, key=value (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete-config", nil, "config override to preview deleted, reverting to the default (repeatable)")
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().BoolVar(&human, "human", false, "print bytes as KiB, MiB, GiB")
	return cmd
}

// retentionConfigs are the configs that decide retention, in the order the
// preview prints them; the local.* ones only for tiered topics.
var retentionConfigs = []string{"cleanup.policy", "retention.ms", "retention.bytes", "local.retention.ms", "local.retention.bytes"}

// tierTotals adds up one tier's rows.
type tierTotals struct {
	Segments int64 `json:"segments"`
	Bytes    int64 `json:"bytes"`
	Offsets  int64 `json:"offsets"`
}

func (t *tierTotals) add(tr *stratav1.TierRetention) {
	t.Segments += tr.GetSegments()
	t.Bytes += tr.GetBytes()
	t.Offsets += tierOffsets(tr)
}

// tierOffsets is how far the tier's start would move.
func tierOffsets(tr *stratav1.TierRetention) int64 {
	if tr.GetStartOffset() < 0 {
		return 0
	}
	return tr.GetNewStartOffset() - tr.GetStartOffset()
}

// previewTiered reports whether any partition of the preview is tiered.
func previewTiered(pv *client.RetentionPreview) bool {
	return slices.ContainsFunc(pv.Partitions, func(p *stratav1.PartitionRetention) bool { return p.GetTiered() })
}

// writeRetentionPreview prints the configs the preview applied, a row per
// partition and tier, totals, and notes.
func writeRetentionPreview(w io.Writer, topic string, pv *client.RetentionPreview, human bool) {
	bytes := dashNum
	if human {
		bytes = humanBytes
	}
	tiered := previewTiered(pv)
	fmt.Fprintf(w, "Retention preview for topic %s (nothing is deleted):\n", topic)
	for _, name := range retentionConfigs {
		if !tiered && (name == "local.retention.ms" || name == "local.retention.bytes") {
			continue
		}
		for _, e := range pv.Configs {
			if e.GetName() == name {
				fmt.Fprintf(w, "  %s=%s\tsource=%s\n", e.GetName(), e.GetValue(), e.GetSource())
			}
		}
	}
	tiers := []string{"local"}
	if tiered {
		tiers = []string{"remote", "local"}
	}
	totals := map[string]*tierTotals{"local": {}, "remote": {}}
	var unknown []int32
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tTIER\tSEGMENTS\tBYTES\tOFFSETS\tSTART\tNEW-START")
	for _, p := range pv.Partitions {
		if p.GetRemoteError() != "" {
			unknown = append(unknown, p.GetPartition())
			fmt.Fprintf(tw, "%d\t%d\t%s\t-\t-\t-\t-\t-\n", p.GetPartition(), p.GetLeader(), "remote,local")
			continue
		}
		for _, tier := range tiers {
			tr := p.GetLocal()
			if tier == "remote" {
				if !p.GetTiered() {
					continue
				}
				tr = p.GetRemote()
			}
			totals[tier].add(tr)
			fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%d\t%s\t%s\n", p.GetPartition(), p.GetLeader(), tier,
				tr.GetSegments(), bytes(tr.GetBytes()), tierOffsets(tr), dashNum(tr.GetStartOffset()), dashNum(tr.GetNewStartOffset()))
		}
	}
	for _, tier := range tiers {
		t := totals[tier]
		fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%s\t%d\t\t\n", tier, t.Segments, bytes(t.Bytes), t.Offsets)
	}
	tw.Flush()
	if len(unknown) > 0 {
		fmt.Fprintf(w, "Note: partitions %s are tiered and their leaders could not read their manifests from the object store: their retention is unknown.\n", joinIDs(unknown))
	}
	if totals["local"].Segments == 0 && totals["remote"].Segments == 0 && totals["local"].Offsets == 0 && totals["remote"].Offsets == 0 {
		fmt.Fprintln(w, "Nothing would be deleted.")
	}
}

// retentionPreviewJSON is the output of `retention preview --output json`.
// Its field names are a stable interface for scripts: add fields, never
// rename them. Offsets are -1 where the table prints "-".
type retentionPreviewJSON struct {
	Topic      string                   `json:"topic"`
	Configs    map[string]string        `json:"configs"`
	Partitions []partitionRetentionJSON `json:"partitions"`
	Totals     map[string]tierTotals    `json:"totals"`
}

type partitionRetentionJSON struct {
	Partition     int32              `json:"partition"`
	Leader        int32              `json:"leader"`
	LeaderEpoch   int32              `json:"leader_epoch"`
	HighWatermark int64              `json:"high_watermark"`
	Tiered        bool               `json:"tiered"`
	Local         *tierRetentionJSON `json:"local,omitempty"`
	Remote        *tierRetentionJSON `json:"remote,omitempty"`
	Error         string             `json:"error,omitempty"`
}

type tierRetentionJSON struct {
	Segments       int64 `json:"segments"`
	Bytes          int64 `json:"bytes"`
	Offsets        int64 `json:"offsets"`
	StartOffset    int64 `json:"start_offset"`
	NewStartOffset int64 `json:"new_start_offset"`
}

func tierJSON(tr *stratav1.TierRetention) *tierRetentionJSON {
	return &tierRetentionJSON{Segments: tr.GetSegments(), Bytes: tr.GetBytes(), Offsets: tierOffsets(tr),
		StartOffset: tr.GetStartOffset(), NewStartOffset: tr.GetNewStartOffset()}
}

func retentionJSONOf(topic string, pv *client.RetentionPreview) retentionPreviewJSON {
	out := retentionPreviewJSON{Topic: topic, Configs: map[string]string{}, Partitions: []partitionRetentionJSON{},
		Totals: map[string]tierTotals{}}
	tiered := previewTiered(pv)
	for _, e := range pv.Configs {
		if slices.Contains(retentionConfigs, e.GetName()) {
			out.Configs[e.GetName()] = e.GetValue()
		}
	}
	local, remote := tierTotals{}, tierTotals{}
	for _, p := range pv.Partitions {
		pj := partitionRetentionJSON{Partition: p.GetPartition(), Leader: p.GetLeader(), LeaderEpoch: p.GetLeaderEpoch(),
			HighWatermark: p.GetHighWatermark(), Tiered: p.GetTiered(), Error: p.GetRemoteError()}
		if pj.Error == "" {
			pj.Local = tierJSON(p.GetLocal())
			local.add(p.GetLocal())
			if p.GetTiered() {
				pj.Remote = tierJSON(p.GetRemote())
				remote.add(p.GetRemote())
			}
		}
		out.Partitions = append(out.Partitions, pj)
	}
	out.Totals["local"] = local
	if tiered {
		out.Totals["remote"] = remote
	}
	return out
}

func newTopicsDeleteRecordsCmd(cf *clientFlags) *cobra.Command {
	var (
		partitions []int32
		offsets    []int64
	)
	cmd := &cobra.Command{
		Use:   "delete-records TOPIC --partition P --offset O",
		Short: "Delete the records below an offset of partitions, as kafka-delete-records.sh",
		Long: `Delete the records below an offset of one or more partitions of TOPIC, as
Kafka's DeleteRecords (kafka-delete-records.sh): each partition's log start
offset (its low watermark) moves up to the offset, consumers can no longer
read below it, and the segments wholly below it are deleted on every
replica. --offset -1 means the high watermark: every record consumers can
read now.

--partition and --offset are repeatable and take comma-separated lists.
Either one offset applies to every partition, or the offsets pair with the
partitions in order:

  strata topics delete-records events --partition 0,1,2 --offset -1
  strata topics delete-records events --partition 0 --offset 100 --partition 1 --offset 250

Each partition prints its new low watermark, or its error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			want, err := deleteRecordsOffsets(partitions, offsets)
			if err != nil {
				return err
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				w := cmd.OutOrStdout()
				fmt.Fprintln(w, "Executing records delete operation")
				results, err := c.DeleteRecords(ctx, args[0], want)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, "Records delete operation completed:")
				failed := 0
				for _, r := range results {
					if r.Err != nil {
						failed++
						fmt.Fprintf(w, "partition: %s-%d\terror: %s\n", args[0], r.Partition, oneLine(plainError(r.Err)))
						continue
					}
					fmt.Fprintf(w, "partition: %s-%d\tlow_watermark: %d\n", args[0], r.Partition, r.LowWatermark)
				}
				if failed > 0 {
					return fmt.Errorf("records not deleted from %d of %d partition(s)", failed, len(results))
				}
				return nil
			})
		},
	}
	cmd.Flags().Int32SliceVar(&partitions, "partition", nil, "partition to delete records of (repeatable, or a comma-separated list)")
	cmd.Flags().Int64SliceVar(&offsets, "offset", nil, "delete the records below this offset, -1 for the high watermark (one for every partition, or one per --partition)")
	return cmd
}

// deleteRecordsOffsets pairs --partition and --offset values.
func deleteRecordsOffsets(partitions []int32, offsets []int64) (map[int32]int64, error) {
	if len(partitions) == 0 || len(offsets) == 0 {
		return nil, errors.New("give the partitions and offsets: --partition P --offset O")
	}
	if len(offsets) != 1 && len(offsets) != len(partitions) {
		return nil, fmt.Errorf("%d offsets for %d partitions: give one offset for all of them, or one per partition", len(offsets), len(partitions))
	}
	out := make(map[int32]int64, len(partitions))
	for i, p := range partitions {
		o := offsets[0]
		if len(offsets) > 1 {
			o = offsets[i]
		}
		switch {
		case p < 0:
			return nil, fmt.Errorf("--partition %d: must be at least 0", p)
		case o < -1:
			return nil, fmt.Errorf("--offset %d: must be an offset, or -1 for the high watermark", o)
		}
		if _, dup := out[p]; dup {
			return nil, fmt.Errorf("--partition %s given twice", strconv.Itoa(int(p)))
		}
		out[p] = o
	}
	return out, nil
}
