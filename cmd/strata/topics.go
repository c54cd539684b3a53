package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/objstore"
)

// adminTimeout bounds one administrative call.
const adminTimeout = 30 * time.Second

func newTopicsCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Create, list, describe, alter and delete topics, and delete records",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(
		newTopicsCreateCmd(cf),
		newTopicsListCmd(cf),
		newTopicsDescribeCmd(cf),
		newTopicsAlterCmd(cf),
		newTopicsDeleteCmd(cf),
		newTopicsDeleteRecordsCmd(cf),
		newTopicsRestoreCmd(cf),
	)
	return cmd
}

func adminContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), adminTimeout)
}

func newTopicsCreateCmd(cf *clientFlags) *cobra.Command {
	var (
		partitions, rf int32
		configs        []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partitions < 1 || rf < 1 {
				return fmt.Errorf("--partitions and --replication-factor must be at least 1")
			}
			cfg, err := parseConfigs("config", configs)
			if err != nil {
				return err
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				if _, err := c.CreateTopic(ctx, args[0], partitions, rf, cfg); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Created topic %s.\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 1, "number of partitions")
	cmd.Flags().Int32Var(&rf, "replication-factor", 1, "number of replicas of each partition")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "topic config override key=value (repeatable)")
	return cmd
}

// topicSummaryJSON is one element of `topics list --output json`.
type topicSummaryJSON struct {
	Name              string `json:"name"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int32  `json:"replication_factor"`
}

func newTopicsListCmd(cf *clientFlags) *cobra.Command {
	var (
		output          outputFormat
		includeInternal bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics, one name per line",
		Long: `List topics, one name per line.

Kafka's internal __consumer_offsets, which Kafka clients see (group offsets
live in etcd, so it holds nothing), is left out unless --include-internal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				topics, err := c.ListTopics(ctx)
				if err != nil {
					return err
				}
				if includeInternal {
					d, err := c.DescribeTopic(ctx, internalTopic)
					if err != nil {
						return err
					}
					internal := &stratav1.TopicSummary{Name: d.GetName(), Partitions: int32(len(d.GetPartitions())), ReplicationFactor: d.GetReplicationFactor()}
					if !slices.ContainsFunc(topics, func(t *stratav1.TopicSummary) bool { return t.GetName() == internalTopic }) {
						topics = append(topics, internal)
						slices.SortFunc(topics, func(a, b *stratav1.TopicSummary) int { return strings.Compare(a.GetName(), b.GetName()) })
					}
				}
				w := cmd.OutOrStdout()
				if output == outputJSON {
					out := make([]topicSummaryJSON, 0, len(topics))
					for _, t := range topics {
						out = append(out, topicSummaryJSON{Name: t.GetName(), Partitions: t.GetPartitions(), ReplicationFactor: t.GetReplicationFactor()})
					}
					return writeJSON(w, out)
				}
				for _, t := range topics {
					fmt.Fprintln(w, t.GetName())
				}
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().BoolVar(&includeInternal, "include-internal", false, "also list Kafka's internal topic __consumer_offsets")
	return cmd
}

// internalTopic is Kafka's internal topic the brokers show Kafka clients.
const internalTopic = "__consumer_offsets"

func newTopicsDescribeCmd(cf *clientFlags) *cobra.Command {
	var (
		output                                    outputFormat
		allConfigs                                bool
		underReplicated, underMinISR, unavailable bool
	)
	cmd := &cobra.Command{
		Use:   "describe [NAME]",
		Short: "Describe a topic, or all: partitions, leaders, replicas, config overrides",
		Long: `Describe a topic (every topic when no name is given) in the format of
Kafka's kafka-topics.sh --describe:

  Topic: NAME<TAB>TopicId: ID<TAB>PartitionCount: N<TAB>ReplicationFactor: R<TAB>Configs: k=v,...
  <TAB>Topic: NAME<TAB>Partition: P<TAB>Leader: ID<TAB>Replicas: 1,2,3<TAB>Isr: 1,2,3

Configs lists the topic's overrides only; --configs adds every config with its
effective value and where it comes from (topic, broker or default).

As in Kafka, one report option shows only the partitions that need attention,
one line each, without the topic lines:
  --under-replicated-partitions  fewer in-sync replicas than replicas
  --under-min-isr-partitions     fewer in-sync replicas than min.insync.replicas
                                 (acks=all produce requests are refused)
  --unavailable-partitions       no leader, or a leader that is not live
Nothing printed means no partition is in that state (or, without a report
option and a name, that there are no topics). With --output json and no
name, the output is a list of topics (with a report option, those with a
selected partition).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := pickFilter(underReplicated, underMinISR, unavailable)
			if err != nil {
				return err
			}
			var name string
			if len(args) == 1 {
				name = args[0]
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				ds, err := describeTopics(ctx, c, name, f)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				switch {
				case output == outputJSON && name != "":
					return writeJSON(w, describeJSON(ds[0], allConfigs))
				case output == outputJSON:
					return writeJSON(w, descriptionsJSON(ds, f, allConfigs))
				}
				writeDescriptions(w, ds, f, allConfigs)
				return nil
			})
		},
	}
	fs := cmd.Flags()
	addOutputFlag(fs, &output)
	fs.BoolVar(&allConfigs, "configs", false, "also print every config with its effective value and source")
	fs.BoolVar(&underReplicated, "under-replicated-partitions", false, "only partitions with fewer in-sync replicas than replicas")
	fs.BoolVar(&underMinISR, "under-min-isr-partitions", false, "only partitions with fewer in-sync replicas than min.insync.replicas")
	fs.BoolVar(&unavailable, "unavailable-partitions", false, "only partitions without a live leader")
	return cmd
}

// Config sources, as ConfigEntry.source reports them.
const sourceTopic = "topic"

// overrides returns the topic-level overrides as k=v, sorted by name.
func overrides(entries []*stratav1.ConfigEntry) []string {
	var out []string
	for _, e := range entries {
		if e.GetSource() == sourceTopic {
			out = append(out, e.GetName()+"="+e.GetValue())
		}
	}
	sort.Strings(out)
	return out
}

func sortedConfigs(entries []*stratav1.ConfigEntry) []*stratav1.ConfigEntry {
	out := append([]*stratav1.ConfigEntry(nil), entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func joinIDs(ids []int32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}

func leaderString(id int32) string {
	if id < 0 {
		return "none" // as Kafka prints a partition without a leader
	}
	return strconv.Itoa(int(id))
}

// writeDescribe prints d as kafka-topics.sh --describe does.
func writeDescribe(w io.Writer, d *stratav1.TopicDescription, allConfigs bool) {
	fmt.Fprintf(w, "Topic: %s\tTopicId: %s\tPartitionCount: %d\tReplicationFactor: %d\tConfigs: %s\n",
		d.GetName(), d.GetTopicId(), len(d.GetPartitions()), d.GetReplicationFactor(), strings.Join(overrides(d.GetConfigs()), ","))
	for _, p := range d.GetPartitions() {
		writePartitionLine(w, d.GetName(), p)
	}
	if allConfigs {
		fmt.Fprintf(w, "All configs for topic %s are:\n", d.GetName())
		for _, e := range sortedConfigs(d.GetConfigs()) {
			fmt.Fprintf(w, "  %s=%s\tsource=%s\n", e.GetName(), e.GetValue(), e.GetSource())
		}
	}
}

// writePartitionLine prints one partition of kafka-topics.sh --describe.
func writePartitionLine(w io.Writer, topic string, p *stratav1.PartitionInfo) {
	fmt.Fprintf(w, "\tTopic: %s\tPartition: %d\tLeader: %s\tReplicas: %s\tIsr: %s",
		topic, p.GetPartition(), leaderString(p.GetLeader()), joinIDs(p.GetReplicas()), joinIDs(p.GetIsr()))
	// As kafka-topics prints a partition that is moving.
	if len(p.GetAddingReplicas()) > 0 {
		fmt.Fprintf(w, "\tAdding Replicas: %s", joinIDs(p.GetAddingReplicas()))
	}
	if len(p.GetRemovingReplicas()) > 0 {
		fmt.Fprintf(w, "\tRemoving Replicas: %s", joinIDs(p.GetRemovingReplicas()))
	}
	fmt.Fprintln(w)
}

// topicJSON is the output of `topics describe --output json`. Its field names
// are a stable interface for scripts: add fields, never rename them.
type topicJSON struct {
	Name              string `json:"name"`
	TopicID           string `json:"topic_id"`
	PartitionCount    int    `json:"partition_count"`
	ReplicationFactor int32  `json:"replication_factor"`
	// Configs are the topic's overrides (source "topic") only.
	Configs map[string]string `json:"configs"`
	// AllConfigs is every config with its effective value and source; only
	// with --configs.
	AllConfigs []configJSON    `json:"all_configs,omitempty"`
	Partitions []partitionJSON `json:"partitions"`
}

type configJSON struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

type partitionJSON struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"` // -1: no leader
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	// While the partition moves: the replicas joining and leaving.
	AddingReplicas   []int32 `json:"adding_replicas,omitempty"`
	RemovingReplicas []int32 `json:"removing_replicas,omitempty"`
}

func describeJSON(d *stratav1.TopicDescription, allConfigs bool) topicJSON {
	out := topicJSON{
		Name:              d.GetName(),
		TopicID:           d.GetTopicId(),
		PartitionCount:    len(d.GetPartitions()),
		ReplicationFactor: d.GetReplicationFactor(),
		Configs:           map[string]string{},
		Partitions:        []partitionJSON{},
	}
	for _, e := range d.GetConfigs() {
		if e.GetSource() == sourceTopic {
			out.Configs[e.GetName()] = e.GetValue()
		}
	}
	if allConfigs {
		out.AllConfigs = []configJSON{}
		for _, e := range sortedConfigs(d.GetConfigs()) {
			out.AllConfigs = append(out.AllConfigs, configJSON{Name: e.GetName(), Value: e.GetValue(), Source: e.GetSource()})
		}
	}
	for _, p := range d.GetPartitions() {
		out.Partitions = append(out.Partitions, partitionJSON{
			Partition:        p.GetPartition(),
			Leader:           p.GetLeader(),
			LeaderEpoch:      p.GetLeaderEpoch(),
			Replicas:         append([]int32{}, p.GetReplicas()...),
			ISR:              append([]int32{}, p.GetIsr()...),
			AddingReplicas:   p.GetAddingReplicas(),
			RemovingReplicas: p.GetRemovingReplicas(),
		})
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTopicsAlterCmd(cf *clientFlags) *cobra.Command {
	var (
		set, del   []string
		partitions int32
	)
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Add partitions to a topic, set or delete its config overrides",
		Long: `Alter a topic: --partitions N grows it to N partitions (as kafka-topics.sh
--alter --partitions; partitions are never removed), --config and
--delete-config set and delete config overrides.

Adding partitions changes which partition a key maps to: records of an
existing key may go to a new partition from then on, so per-key order holds
only within the records written before and within those written after.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseConfigs("config", set)
			if err != nil {
				return err
			}
			grow := cmd.Flags().Changed("partitions")
			if len(cfg) == 0 && len(del) == 0 && !grow {
				return errors.New("nothing to alter: give --partitions N, --config key=value or --delete-config key")
			}
			if grow && partitions < 1 {
				return fmt.Errorf("--partitions %d: want the new number of partitions, at least 1", partitions)
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				w := cmd.OutOrStdout()
				var lines []string
				// The configs first: they can be set back, partitions
				// cannot be taken away, so a refused config changes nothing.
				if len(cfg) > 0 || len(del) > 0 {
					entries, err := c.AlterTopicConfigs(ctx, args[0], cfg, del)
					if err != nil {
						return err
					}
					lines = append(lines, "Configs: "+strings.Join(overrides(entries), ","))
				}
				if grow {
					d, err := c.CreatePartitions(ctx, args[0], partitions)
					if err != nil {
						if len(lines) > 0 {
							return fmt.Errorf("%w (the configs were altered: %s)", err, lines[0])
						}
						return err
					}
					lines = append(lines, fmt.Sprintf("PartitionCount: %d", len(d.GetPartitions())))
				}
				fmt.Fprintf(w, "Altered topic %s.\n%s\n", args[0], strings.Join(lines, "\n"))
				return nil
			})
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 0, "grow the topic to this many partitions")
	cmd.Flags().StringArrayVar(&set, "config", nil, "config override to set, key=value (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete-config", nil, "config override to delete, reverting to the default (repeatable)")
	return cmd
}

func newTopicsDeleteCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic and its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteTopic(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted topic %s.\n", args[0])
				return nil
			})
		},
	}
}

func newTopicsRestoreCmd(cf *clientFlags) *cobra.Command {
	var storeURL, topic string
	cmd := &cobra.Command{
		Use:   "restore --object-store URL --topic NAME",
		Short: "Recreate a topic in the cluster from the object store, its history readable from offset 0",
		Long: `Recreate a topic from the object store its segments were tiered to: the
newest incarnation of that name in the bucket, with the same topic id,
partition count, replication factor and configs. Each partition continues
where its copy in the bucket ends; its history is read from the bucket.

--object-store names the bucket the topic is read from here; the brokers must
run with the same --object-store, since they serve the history from it.

A topic deleted from the cluster is not restorable: its objects are deleted
from the bucket, and restoring it is refused while that is under way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if storeURL == "" || topic == "" {
				return errors.New("--object-store and --topic are required")
			}
			ctx, cancel := adminContext(cmd)
			defer cancel()
			st, err := objstore.Open(ctx, storeURL, objstore.Options{})
			if err != nil {
				return err
			}
			tm, err := tiering.FindTopic(ctx, st, topic)
			if err != nil {
				return fmt.Errorf("topic %s in %s: %w", topic, st, err)
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				d, err := c.RestoreTopic(ctx, topic)
				if err != nil {
					return err
				}
				if d.GetTopicId() != tm.ID {
					return fmt.Errorf("the brokers restored topic id %s, but %s holds %s: the brokers use another object store", d.GetTopicId(), st, tm.ID)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Restored topic %s (id %s, %d partitions) from %s.\n", topic, tm.ID, tm.Partitions, st)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&storeURL, "object-store", "", "the bucket to restore from: s3://BUCKET/PREFIX?endpoint=URL&region=R or file:///DIR")
	cmd.Flags().StringVar(&topic, "topic", "", "the topic to restore")
	return cmd
}
