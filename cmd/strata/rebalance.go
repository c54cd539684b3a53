package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/broker/rebalance"
)

func newClusterCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "The cluster as a whole: its controller, brokers and racks; spread its load",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newClusterInfoCmd(cf), newClusterRebalanceCmd(cf))
	return cmd
}

// planFlags are the flags of the commands that compute and apply a plan.
type planFlags struct {
	dryRun bool
	wait   time.Duration
}

func (pf *planFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&pf.dryRun, "dry-run", false, "print the plan and move nothing")
	cmd.Flags().DurationVar(&pf.wait, "wait", 0, "wait up to this long for the moves to complete, then elect the preferred leaders")
}

func newClusterRebalanceCmd(cf *clientFlags) *cobra.Command {
	pf := &planFlags{}
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Even out replicas, leaders and bytes across the live brokers",
		Long: `Compute a plan that evens out the live brokers' replicas (within one),
preferred leaders (within one) and bytes on disk, and apply it with
partition reassignments.

The plan keeps each partition's replication factor, never narrows the
racks its replicas span (and spreads replicas that share a rack where
another rack has room), leaves partitions already moving alone, and moves
as few replicas as it can: a new, empty broker receives about its share,
and a balanced cluster gets no moves. It is printed as a
kafka-reassign-partitions JSON plan (usable with strata partitions
reassign --reassignment-json-file) and as each broker's replicas, leaders
and bytes before and after.

Without --dry-run the moves start; the controller carries them out as for
strata partitions reassign. With --wait the command waits for them to
complete, then elects the preferred leaders of the moved partitions, so
leaders spread as planned (a partition led by a replica other than its
first is counted at its first: strata partitions elect-leaders
--all-topic-partitions puts it there).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPlan(cmd, cf, pf, rebalance.Goal{})
		},
	}
	pf.register(cmd)
	return cmd
}

func newBrokersDrainCmd(cf *clientFlags) *cobra.Command {
	pf := &planFlags{}
	cmd := &cobra.Command{
		Use:   "drain BROKER_ID",
		Short: "Move every replica and leadership off a broker so it can be retired",
		Long: `Move every partition replica off the broker, to the other live brokers,
so it can be stopped and retired. The replicas go where the racks stay
spread and the load stays even, as strata cluster rebalance places them;
the rest of the cluster is evened out in the same plan. A drain the other
brokers cannot hold (fewer of them than a partition's replication factor)
is refused, as is one while a partition on the broker is moving.

Leadership leaves the broker as each move completes. --dry-run prints the
plan; --wait waits for the moves and then elects preferred leaders.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs("BROKER_ID", args[0])
			if err != nil || len(ids) != 1 {
				return fmt.Errorf("BROKER_ID %q: want one broker id", args[0])
			}
			return runPlan(cmd, cf, pf, rebalance.Goal{Drain: ids})
		},
	}
	pf.register(cmd)
	return cmd
}

// runPlan reads the cluster, computes the plan for goal, prints it and,
// unless --dry-run, starts it (and with --wait sees it through).
func runPlan(cmd *cobra.Command, cf *clientFlags, pf *planFlags, goal rebalance.Goal) error {
	ctx, stop := context.WithTimeout(cmd.Context(), adminTimeout+pf.wait)
	defer stop()
	c, err := cf.dialWith(ctx, cmd.InOrStdin())
	if err != nil {
		return err
	}
	defer c.Close()
	out := cmd.OutOrStdout()
	md, err := c.Metadata(ctx)
	if err != nil {
		return err
	}
	dirs, err := c.DescribeLogDirs(ctx)
	if err != nil {
		return err
	}
	brokers, parts := planInput(md, dirs)
	for _, id := range goal.Drain {
		if !slices.ContainsFunc(brokers, func(b rebalance.Broker) bool { return b.ID == id }) &&
			!slices.ContainsFunc(parts, func(p rebalance.Partition) bool { return slices.Contains(p.Replicas, id) }) {
			return fmt.Errorf("broker %d is not in the cluster and holds no replicas", id)
		}
	}
	plan, err := rebalance.Compute(brokers, parts, goal)
	if err != nil {
		return err
	}
	if len(plan.Moves) == 0 {
		fmt.Fprintln(out, "Nothing to move: the brokers are balanced.")
		writeLoads(out, plan)
		return nil
	}
	proposed := reassignmentPlan{Version: 1}
	moves := make([]client.PartitionMove, 0, len(plan.Moves))
	for _, m := range plan.Moves {
		proposed.Partitions = append(proposed.Partitions, planPartitionEntry{Topic: m.Topic, Partition: m.Partition, Replicas: m.To})
		moves = append(moves, client.PartitionMove{Topic: m.Topic, Partition: m.Partition, Replicas: m.To})
	}
	raw, err := json.Marshal(proposed)
	if err != nil {
		return fmt.Errorf("encode the plan: %w", err)
	}
	fmt.Fprintf(out, "Proposed partition reassignment (%d partitions)\n\n%s\n\n", len(plan.Moves), raw)
	writeLoads(out, plan)
	if pf.dryRun {
		return nil
	}
	fmt.Fprintln(out)
	if err := startMoves(ctx, c, out, moves); err != nil {
		return err
	}
	if pf.wait <= 0 {
		return nil
	}
	if err := waitMoves(ctx, c, out, moves); err != nil {
		return err
	}
	return electPlanned(ctx, c, out, plan)
}

// planInput is the planner's view of the cluster: the live brokers, and
// every partition with its target replicas and the largest of its
// replicas' local log sizes.
func planInput(md *stratav1.MetadataResponse, dirs []*stratav1.DescribeLogDirsResponse) ([]rebalance.Broker, []rebalance.Partition) {
	brokers := make([]rebalance.Broker, 0, len(md.GetBrokers()))
	for _, b := range md.GetBrokers() {
		brokers = append(brokers, rebalance.Broker{ID: b.GetNodeId(), Rack: b.GetRack()})
	}
	size := map[string]int64{}
	for _, d := range dirs {
		for _, r := range d.GetReplicas() {
			k := partitionName(r.GetTopic(), r.GetPartition())
			size[k] = max(size[k], r.GetSizeBytes())
		}
	}
	var parts []rebalance.Partition
	for _, t := range md.GetTopics() {
		for _, p := range t.GetPartitions() {
			parts = append(parts, rebalance.Partition{
				Topic: t.GetName(), Partition: p.GetPartition(), Replicas: targetOf(p), Leader: p.GetLeader(),
				Size:   size[partitionName(t.GetName(), p.GetPartition())],
				Moving: len(p.GetAddingReplicas()) > 0 || len(p.GetRemovingReplicas()) > 0,
			})
		}
	}
	return brokers, parts
}

// writeLoads prints each broker's replicas, leaders and bytes before and
// after the plan.
func writeLoads(w io.Writer, plan rebalance.Plan) {
	after := map[int32]rebalance.Load{}
	for _, l := range plan.After {
		after[l.ID] = l
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tREPLICAS\tLEADERS\tBYTES")
	for _, b := range plan.Before {
		a := after[b.ID]
		fmt.Fprintf(tw, "%d\t%d → %d\t%d → %d\t%s → %s\n", b.ID, b.Replicas, a.Replicas, b.Leaders, a.Leaders, humanBytes(b.Bytes), humanBytes(a.Bytes))
	}
	tw.Flush()
}

// electPlanned elects the preferred leaders of the moved partitions, so
// that leaders are where the plan put them: a completed move keeps its
// leader while it stays a replica.
func electPlanned(ctx context.Context, c *client.Client, out io.Writer, plan rebalance.Plan) error {
	parts := make([]client.PartitionRef, 0, len(plan.Moves))
	for _, m := range plan.Moves {
		parts = append(parts, client.PartitionRef{Topic: m.Topic, Partition: m.Partition})
	}
	results, err := c.ElectLeaders(ctx, false, parts...)
	if err != nil {
		return err
	}
	return reportElections(out, results, false)
}

// targetOf is where a partition is going: its replicas without those a
// move in progress removes. A plan keeps a moving partition there.
func targetOf(p *stratav1.PartitionInfo) []int32 {
	return slices.DeleteFunc(slices.Clone(p.GetReplicas()), func(id int32) bool { return slices.Contains(p.GetRemovingReplicas(), id) })
}
