package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func newPartitionsCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "Move partitions between brokers and elect their leaders",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newPartitionsReassignCmd(cf), newPartitionsElectLeadersCmd(cf))
	return cmd
}

// reassignmentPlan is kafka-reassign-partitions' JSON file: a version and
// the partitions with their target replicas (log_dirs is accepted and must
// be "any", as a broker has one data directory).
type reassignmentPlan struct {
	Version    int                  `json:"version"`
	Partitions []planPartitionEntry `json:"partitions"`
}

type planPartitionEntry struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Replicas  []int32  `json:"replicas"`
	LogDirs   []string `json:"log_dirs,omitempty"`
}

func readPlan(path string) (reassignmentPlan, error) {
	var plan reassignmentPlan
	raw, err := os.ReadFile(path)
	if err != nil {
		return plan, fmt.Errorf("--reassignment-json-file: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&plan); err != nil {
		return plan, fmt.Errorf("--reassignment-json-file %s: %w", path, err)
	}
	if plan.Version != 1 {
		return plan, fmt.Errorf("--reassignment-json-file %s: version %d; only version 1 is known", path, plan.Version)
	}
	if len(plan.Partitions) == 0 {
		return plan, fmt.Errorf("--reassignment-json-file %s: no partitions", path)
	}
	seen := map[string]bool{}
	for _, p := range plan.Partitions {
		key := fmt.Sprintf("%s-%d", p.Topic, p.Partition)
		switch {
		case p.Topic == "":
			return plan, fmt.Errorf("--reassignment-json-file %s: a partition without a topic", path)
		case seen[key]:
			return plan, fmt.Errorf("--reassignment-json-file %s: %s is listed twice", path, key)
		case len(p.Replicas) == 0:
			return plan, fmt.Errorf("--reassignment-json-file %s: %s has no replicas", path, key)
		case len(p.LogDirs) > 0 && len(p.LogDirs) != len(p.Replicas):
			return plan, fmt.Errorf("--reassignment-json-file %s: %s has %d log_dirs for %d replicas", path, key, len(p.LogDirs), len(p.Replicas))
		}
		for _, d := range p.LogDirs {
			if d != "any" {
				return plan, fmt.Errorf("--reassignment-json-file %s: %s: log_dirs %q: a broker has one data directory; give \"any\"", path, key, d)
			}
		}
		seen[key] = true
	}
	return plan, nil
}

func newPartitionsReassignCmd(cf *clientFlags) *cobra.Command {
	var (
		topic             string
		partition         int32
		replicas          string
		planFile          string
		verify, cancelMov bool
		list              bool
		wait              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "reassign",
		Short: "Move partitions to other brokers (kafka-reassign-partitions)",
		Long: `Move partitions to new replica sets, as kafka-reassign-partitions does.

One partition:
  strata partitions reassign --topic T --partition 0 --replicas 2,3,4

Many, from a plan in kafka-reassign-partitions' JSON format:
  {"version":1,"partitions":[{"topic":"T","partition":0,"replicas":[2,3,4]}]}
  strata partitions reassign --reassignment-json-file plan.json
  strata partitions reassign --reassignment-json-file plan.json --verify
  strata partitions reassign --reassignment-json-file plan.json --cancel

Starting a move prints the current assignment as a plan to keep for a
rollback. The added replicas copy the log (for a topic with
remote.storage.enable=true, only the part not in the object store yet),
join the ISR, then the removed replicas leave; leadership moves off a
removed replica on the way. --verify reports each partition's progress,
--cancel returns moving partitions to their original replicas, --list
shows every move in progress, and --wait blocks until the moves finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var moves []client.PartitionMove
			switch {
			case list:
				if planFile != "" || topic != "" || verify || cancelMov {
					return errors.New("--list takes no other option")
				}
			case planFile != "":
				if topic != "" || replicas != "" {
					return errors.New("give either --reassignment-json-file or --topic, --partition and --replicas")
				}
				plan, err := readPlan(planFile)
				if err != nil {
					return err
				}
				for _, p := range plan.Partitions {
					moves = append(moves, client.PartitionMove{Topic: p.Topic, Partition: p.Partition, Replicas: p.Replicas})
				}
			case topic != "":
				if !cmd.Flags().Changed("partition") {
					return errors.New("--partition is required with --topic")
				}
				m := client.PartitionMove{Topic: topic, Partition: partition}
				if replicas == "" && !verify && !cancelMov {
					return errors.New("--replicas is required to start a move")
				}
				if replicas != "" {
					ids, err := parseIDs("--replicas", replicas)
					if err != nil {
						return err
					}
					m.Replicas = ids
				}
				moves = append(moves, m)
			default:
				return errors.New("name the partitions: --reassignment-json-file, or --topic, --partition and --replicas (or --list)")
			}
			if verify && cancelMov {
				return errors.New("--verify and --cancel exclude each other")
			}
			ctx, stop := context.WithTimeout(cmd.Context(), adminTimeout+wait)
			defer stop()
			c, err := cf.dialWith(ctx, cmd.InOrStdin())
			if err != nil {
				return err
			}
			defer c.Close()
			out := cmd.OutOrStdout()
			switch {
			case list:
				return listMoves(ctx, c, out)
			case verify:
				return verifyMoves(ctx, c, out, moves)
			case cancelMov:
				return cancelMoves(ctx, c, out, moves)
			}
			if err := startMoves(ctx, c, out, moves); err != nil {
				return err
			}
			if wait > 0 {
				return waitMoves(ctx, c, out, moves)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&topic, "topic", "", "the topic of the partition to move")
	fs.Int32Var(&partition, "partition", 0, "the partition to move")
	fs.StringVar(&replicas, "replicas", "", "the target replicas, preferred leader first (e.g. 2,3,4)")
	fs.StringVar(&planFile, "reassignment-json-file", "", "a plan in kafka-reassign-partitions' JSON format")
	fs.BoolVar(&verify, "verify", false, "report whether the named moves are complete")
	fs.BoolVar(&cancelMov, "cancel", false, "cancel the named moves: the partitions return to their original replicas")
	fs.BoolVar(&list, "list", false, "list every move in progress")
	fs.DurationVar(&wait, "wait", 0, "after starting the moves, wait up to this long for them to complete")
	return cmd
}

// parseIDs reads a comma-separated list of broker ids.
func parseIDs(flag, s string) ([]int32, error) {
	var ids []int32
	for _, f := range strings.Split(s, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%s %q: want broker ids separated by commas (e.g. 1,2,3)", flag, s)
		}
		ids = append(ids, int32(id))
	}
	return ids, nil
}

func partitionName(topic string, p int32) string { return fmt.Sprintf("%s-%d", topic, p) }

// startMoves prints the current assignment of the partitions as a plan to
// roll back to, then starts the moves.
func startMoves(ctx context.Context, c *client.Client, out io.Writer, moves []client.PartitionMove) error {
	current, err := currentAssignment(ctx, c, moves)
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(current)
	fmt.Fprintf(out, "Current partition replica assignment\n\n%s\n\nSave this to use as the --reassignment-json-file option during rollback\n", raw)
	results, err := c.AlterPartitionReassignments(ctx, moves)
	if err != nil {
		return err
	}
	return report(out, results, "Successfully started partition reassignments for")
}

func currentAssignment(ctx context.Context, c *client.Client, moves []client.PartitionMove) (reassignmentPlan, error) {
	plan := reassignmentPlan{Version: 1}
	described := map[string]*stratav1.TopicDescription{}
	for _, m := range moves {
		d, ok := described[m.Topic]
		if !ok {
			var err error
			if d, err = c.DescribeTopic(ctx, m.Topic); err != nil {
				return plan, err
			}
			described[m.Topic] = d
		}
		p := findPartition(d, m.Partition)
		if p == nil {
			return plan, fmt.Errorf("topic %q has no partition %d", m.Topic, m.Partition)
		}
		plan.Partitions = append(plan.Partitions, planPartitionEntry{Topic: m.Topic, Partition: m.Partition, Replicas: originalOf(p)})
	}
	return plan, nil
}

func findPartition(d *stratav1.TopicDescription, p int32) *stratav1.PartitionInfo {
	for _, pi := range d.GetPartitions() {
		if pi.GetPartition() == p {
			return pi
		}
	}
	return nil
}

// originalOf is where a partition was before a move in progress: its
// replicas without those the move adds. That, not the move's target, is the
// assignment a rollback returns to.
func originalOf(p *stratav1.PartitionInfo) []int32 {
	return slices.DeleteFunc(slices.Clone(p.GetReplicas()), func(id int32) bool { return slices.Contains(p.GetAddingReplicas(), id) })
}

// report prints the partitions that succeeded after ok, and returns an
// error naming each that failed.
func report(out io.Writer, results []client.PartitionResult, ok string) error {
	var done []string
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
			continue
		}
		done = append(done, partitionName(r.Topic, r.Partition))
	}
	if len(done) > 0 {
		fmt.Fprintf(out, "%s: %s\n", ok, strings.Join(done, ","))
	}
	return errors.Join(errs...)
}

func cancelMoves(ctx context.Context, c *client.Client, out io.Writer, moves []client.PartitionMove) error {
	cancels := make([]client.PartitionMove, 0, len(moves))
	for _, m := range moves {
		cancels = append(cancels, client.PartitionMove{Topic: m.Topic, Partition: m.Partition})
	}
	results, err := c.AlterPartitionReassignments(ctx, cancels)
	if err != nil {
		return err
	}
	return report(out, results, "Successfully cancelled partition reassignments for")
}

// moveStatus says where each named move is, as kafka-reassign-partitions
// --verify does; done is true when every one is complete.
func moveStatus(ctx context.Context, c *client.Client, moves []client.PartitionMove) (lines []string, done bool, err error) {
	done = true
	described := map[string]*stratav1.TopicDescription{}
	for _, m := range moves {
		d, ok := described[m.Topic]
		if !ok {
			if d, err = c.DescribeTopic(ctx, m.Topic); err != nil {
				return nil, false, err
			}
			described[m.Topic] = d
		}
		name := partitionName(m.Topic, m.Partition)
		p := findPartition(d, m.Partition)
		switch {
		case p == nil:
			return nil, false, fmt.Errorf("topic %q has no partition %d", m.Topic, m.Partition)
		case len(p.GetAddingReplicas()) > 0 || len(p.GetRemovingReplicas()) > 0:
			done = false
			lines = append(lines, fmt.Sprintf("Reassignment of partition %s is still in progress (adding %s, removing %s).",
				name, joinIDs(p.GetAddingReplicas()), joinIDs(p.GetRemovingReplicas())))
		case len(m.Replicas) > 0 && !slices.Equal(p.GetReplicas(), m.Replicas):
			lines = append(lines, fmt.Sprintf("There is no active reassignment of partition %s, but replica set is %s rather than %s.",
				name, joinIDs(p.GetReplicas()), joinIDs(m.Replicas)))
		default:
			lines = append(lines, fmt.Sprintf("Reassignment of partition %s is completed.", name))
		}
	}
	return lines, done, nil
}

func verifyMoves(ctx context.Context, c *client.Client, out io.Writer, moves []client.PartitionMove) error {
	lines, _, err := moveStatus(ctx, c, moves)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Status of partition reassignment:")
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

// waitPoll is how often --wait looks at the moves.
const waitPoll = 250 * time.Millisecond

func waitMoves(ctx context.Context, c *client.Client, out io.Writer, moves []client.PartitionMove) error {
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		lines, done, err := moveStatus(ctx, c, moves)
		if err != nil {
			return err
		}
		if done {
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the moves did not complete in time: %s", strings.Join(lines, " "))
		case <-t.C:
		}
	}
}

func listMoves(ctx context.Context, c *client.Client, out io.Writer) error {
	moves, err := c.ListPartitionReassignments(ctx)
	if err != nil {
		return err
	}
	if len(moves) == 0 {
		fmt.Fprintln(out, "No partition reassignments in progress.")
		return nil
	}
	for _, m := range moves {
		fmt.Fprintf(out, "Topic: %s\tPartition: %d\tReplicas: %s\tAdding Replicas: %s\tRemoving Replicas: %s\n",
			m.GetTopic(), m.GetPartition(), joinIDs(m.GetReplicas()), joinIDs(m.GetAddingReplicas()), joinIDs(m.GetRemovingReplicas()))
	}
	return nil
}

func newPartitionsElectLeadersCmd(cf *clientFlags) *cobra.Command {
	var (
		electionType string
		topic        string
		partition    int32
		all          bool
		pathToJSON   string
	)
	cmd := &cobra.Command{
		Use:   "elect-leaders",
		Short: "Elect the preferred (or any live) replica leader (kafka-leader-election)",
		Long: `Elect leaders, as kafka-leader-election does.

  --election-type preferred   the first replica of each partition's replica
                              list leads, where it is alive and in the ISR
  --election-type unclean     a leaderless partition takes any live replica,
                              which may lose acknowledged records

Name the partitions with --topic and --partition, with --path-to-json-file
({"partitions":[{"topic":"T","partition":0}]}), or --all-topic-partitions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var unclean bool
			switch strings.ToLower(electionType) {
			case "preferred":
			case "unclean":
				unclean = true
			default:
				return fmt.Errorf("--election-type %q: want preferred or unclean", electionType)
			}
			var parts []client.PartitionRef
			given := 0
			if topic != "" {
				given++
				if !cmd.Flags().Changed("partition") {
					return errors.New("--partition is required with --topic")
				}
				parts = append(parts, client.PartitionRef{Topic: topic, Partition: partition})
			}
			if pathToJSON != "" {
				given++
				var f struct {
					Partitions []struct {
						Topic     string `json:"topic"`
						Partition int32  `json:"partition"`
					} `json:"partitions"`
				}
				raw, err := os.ReadFile(pathToJSON)
				if err != nil {
					return fmt.Errorf("--path-to-json-file: %w", err)
				}
				if err := json.Unmarshal(raw, &f); err != nil {
					return fmt.Errorf("--path-to-json-file %s: %w", pathToJSON, err)
				}
				if len(f.Partitions) == 0 {
					return fmt.Errorf("--path-to-json-file %s: no partitions", pathToJSON)
				}
				for _, p := range f.Partitions {
					parts = append(parts, client.PartitionRef{Topic: p.Topic, Partition: p.Partition})
				}
			}
			if all {
				given++
			}
			if given != 1 {
				return errors.New("give one of --topic/--partition, --path-to-json-file or --all-topic-partitions")
			}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				results, err := c.ElectLeaders(ctx, unclean, parts...)
				if err != nil {
					return err
				}
				return reportElections(cmd.OutOrStdout(), results, all)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&electionType, "election-type", "", "preferred or unclean")
	fs.StringVar(&topic, "topic", "", "the topic of the partition")
	fs.Int32Var(&partition, "partition", 0, "the partition")
	fs.BoolVar(&all, "all-topic-partitions", false, "elect in every partition")
	fs.StringVar(&pathToJSON, "path-to-json-file", "", "the partitions, as kafka-leader-election's JSON file")
	return cmd
}

// electionError is a partition's election error without the partition,
// which the line names already: Kafka's name for the error and the
// broker's reason.
func electionError(err error) string {
	var pe *client.PartitionError
	if !errors.As(err, &pe) {
		return plainError(err)
	}
	return cmp.Or(pe.Reason, pe.Code.String()) + ": " + pe.Message
}

// failedElection is one partition's failed election, the partition named
// once.
type failedElection struct {
	partition string
	err       error
}

func (e *failedElection) Error() string {
	return "leader election for partition " + e.partition + ": " + electionError(e.err)
}

func (e *failedElection) Unwrap() error { return e.err }

// reportElections prints as kafka-leader-election does; a partition that
// needed no election is not a failure. With every partition asked for,
// those without an eligible leader are listed but not failures either.
func reportElections(out io.Writer, results []client.PartitionResult, all bool) error {
	var done, notNeeded []string
	var errs []error
	for _, r := range results {
		name := partitionName(r.Topic, r.Partition)
		var pe *client.PartitionError
		switch {
		case r.Err == nil:
			done = append(done, name)
		case errors.As(r.Err, &pe) && pe.Reason == stratav1.ErrorReason_ELECTION_NOT_NEEDED.String():
			notNeeded = append(notNeeded, name)
		case all:
			fmt.Fprintf(out, "Error completing leader election for partition %s: %s\n", name, electionError(r.Err))
		default:
			errs = append(errs, &failedElection{partition: name, err: r.Err})
		}
	}
	if len(done) > 0 {
		fmt.Fprintf(out, "Successfully completed leader election for partitions %s\n", strings.Join(done, ", "))
	}
	if len(notNeeded) > 0 {
		fmt.Fprintf(out, "Valid replica already elected for partitions %s\n", strings.Join(notNeeded, ", "))
	}
	return errors.Join(errs...)
}
