package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
)

// resetFlags are the options of `groups reset-offsets`: one scope (--topic
// or --all-topics), exactly one target, and at most one of --dry-run and
// --execute.
type resetFlags struct {
	topic      string
	allTopics  bool
	partitions []int32

	earliest, latest, current bool
	offset                    int64
	shiftBy                   int64
	datetime                  string
	byDuration                string

	dryRun, execute bool
}

// datetimeLayouts are the forms --to-datetime accepts: Kafka's
// (YYYY-MM-DDTHH:mm:SS.sss, local time unless a zone follows) and RFC 3339.
var datetimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02"}

func parseDatetime(s string) (time.Time, error) {
	for _, l := range datetimeLayouts {
		if t, err := time.ParseInLocation(l, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--to-datetime %q: want YYYY-MM-DDTHH:mm:SS[.sss][zone] or RFC 3339", s)
}

// isoDuration is the ISO-8601 form Kafka's --by-duration takes (PnDTnHnMn.nS).
var isoDuration = regexp.MustCompile(`(?i)^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:[.,](\d{1,9}))?S)?)?$`)

// parseByDuration reads --by-duration: Kafka's ISO-8601 form (P7D, PT1H30M,
// P1DT12H) or a Go duration (90m), so both habits work.
func parseByDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("--by-duration %q must not be negative", s)
		}
		return d, nil
	}
	m := isoDuration.FindStringSubmatch(s)
	// "P" and "PT" alone match the pattern but name no duration.
	if m == nil || strings.Join(m[1:], "") == "" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, fmt.Errorf("--by-duration %q: want an ISO-8601 duration such as P7D or PT1H30M, or a duration such as 90m", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil || n > int64(1<<62)/int64(unit) {
			return 0, fmt.Errorf("--by-duration %q is too long", s)
		}
		d += time.Duration(n) * unit
	}
	if frac := m[5]; frac != "" {
		ns, _ := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		d += time.Duration(ns)
	}
	return d, nil
}

// check validates the combination of flags before anything is asked of the
// cluster. Kafka's tool refuses the same combinations.
func (f *resetFlags) check(changed func(string) bool) error {
	if f.topic == "" && !f.allTopics || f.topic != "" && f.allTopics {
		return errors.New("give exactly one of --topic, --all-topics")
	}
	if f.allTopics && len(f.partitions) > 0 {
		return errors.New("--partitions goes with --topic, not --all-topics")
	}
	n := 0
	for _, set := range []bool{f.earliest, f.latest, f.current, changed("to-offset"), changed("shift-by"), f.datetime != "", f.byDuration != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of --to-earliest, --to-latest, --to-current, --to-offset, --shift-by, --to-datetime, --by-duration")
	}
	if changed("to-offset") && f.offset < 0 {
		return errors.New("--to-offset must not be negative")
	}
	if f.dryRun && f.execute {
		return errors.New("give at most one of --dry-run, --execute")
	}
	return nil
}

// spec returns the target as an OffsetSpec for the targets that do not
// depend on the group's committed offsets; ok is false for --to-current and
// --shift-by.
func (f *resetFlags) spec(changed func(string) bool, now time.Time) (spec client.OffsetSpec, ok bool, err error) {
	switch {
	case f.earliest:
		return client.ToEarliest(), true, nil
	case f.latest:
		return client.ToLatest(), true, nil
	case changed("to-offset"):
		return client.ToOffset(f.offset), true, nil
	case f.datetime != "":
		t, err := parseDatetime(f.datetime)
		if err != nil {
			return client.OffsetSpec{}, false, err
		}
		return client.ToTime(t), true, nil
	case f.byDuration != "":
		d, err := parseByDuration(f.byDuration)
		if err != nil {
			return client.OffsetSpec{}, false, err
		}
		at := now.Add(-d)
		if at.Before(time.Unix(0, 0)) {
			// Before any record's timestamp: the earliest offset.
			return client.ToEarliest(), true, nil
		}
		return client.ToTime(at), true, nil
	}
	return client.OffsetSpec{}, false, nil
}

// resetPlan is the new offset of each partition, by topic.
type resetPlan map[string]map[int32]int64

// planReset computes the new offsets without changing anything.
func planReset(ctx context.Context, c *client.Client, group string, f *resetFlags, changed func(string) bool) (resetPlan, error) {
	spec, fixed, err := f.spec(changed, time.Now())
	if err != nil {
		return nil, err
	}
	var committed map[string]map[int32]int64
	if f.allTopics || !fixed {
		committed, err = committedOffsets(ctx, c, group)
		if err != nil {
			return nil, err
		}
	}
	scope := map[string][]int32{f.topic: f.partitions}
	if f.allTopics {
		// As Kafka's --all-topics: the partitions the group has committed
		// offsets in.
		scope = map[string][]int32{}
		for topic, offs := range committed {
			scope[topic] = slices.Sorted(maps.Keys(offs))
		}
		if len(scope) == 0 {
			return nil, fmt.Errorf("consumer group %q has no committed offsets to reset", group)
		}
	}
	plan := resetPlan{}
	for topic, parts := range scope {
		if fixed {
			offs, err := c.ResolveOffsets(ctx, topic, parts, spec)
			if err != nil {
				return nil, err
			}
			plan[topic] = offs
			continue
		}
		// The keys of the log ends are the partitions in scope, which
		// nil parts leaves to the topic's metadata.
		latest, err := c.ResolveOffsets(ctx, topic, parts, client.ToLatest())
		if err != nil {
			return nil, err
		}
		plan[topic], err = relativeOffsets(ctx, c, topic, f, committed[topic], latest)
		if err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// relativeOffsets resolves --to-current and --shift-by, the targets that
// start from the committed offsets. A partition without one is at its log
// end for --to-current (as Kafka's tool does) and refused for --shift-by,
// since there is nothing to shift.
func relativeOffsets(ctx context.Context, c *client.Client, topic string, f *resetFlags, committed, latest map[int32]int64) (map[int32]int64, error) {
	out := make(map[int32]int64, len(latest))
	if f.current {
		for p, end := range latest {
			if off, ok := committed[p]; ok {
				out[p] = off
			} else {
				out[p] = end
			}
		}
		return out, nil
	}
	earliest, err := c.ResolveOffsets(ctx, topic, slices.Collect(maps.Keys(latest)), client.ToEarliest())
	if err != nil {
		return nil, err
	}
	for p := range latest {
		off, ok := committed[p]
		if !ok {
			return nil, fmt.Errorf("cannot shift the offset of %s-%d: the group has no committed offset there", topic, p)
		}
		// As Kafka's tool: brought into the partition's range.
		out[p] = min(max(saturatingAdd(off, f.shiftBy), earliest[p]), latest[p])
	}
	return out, nil
}

func committedOffsets(ctx context.Context, c *client.Client, group string) (map[string]map[int32]int64, error) {
	offs, err := c.FetchOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]int64{}
	for _, o := range offs {
		if out[o.GetTopic()] == nil {
			out[o.GetTopic()] = map[int32]int64{}
		}
		out[o.GetTopic()][o.GetPartition()] = o.GetOffset()
	}
	return out, nil
}

// write prints the plan as kafka-consumer-groups.sh does, sorted by topic
// and partition.
func (p resetPlan) write(w io.Writer, group string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tNEW-OFFSET")
	for _, topic := range slices.Sorted(maps.Keys(p)) {
		for _, part := range slices.Sorted(maps.Keys(p[topic])) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", group, topic, part, p[topic][part])
		}
	}
	return tw.Flush()
}

func newGroupsResetOffsetsCmd(cf *clientFlags) *cobra.Command {
	var f resetFlags
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP (--topic TOPIC | --all-topics) TARGET [--execute]",
		Short: "Preview or (with --execute) set a group's committed offsets",
		Long: `Compute new committed offsets for a consumer group, as
kafka-consumer-groups.sh --reset-offsets does, and print them. As in Kafka,
nothing changes unless --execute is given; --dry-run says so explicitly.
The group must have no active members for --execute.

Scope: --topic (all its partitions, or --partitions) or --all-topics (every
partition the group has a committed offset in).

Target, exactly one of:
  --to-earliest, --to-latest   each partition's log start or end
  --to-current                 the committed offset (the log end where none)
  --to-offset N                N, brought into each partition's range
  --shift-by N                 the committed offset plus N (may be negative),
                               brought into each partition's range
  --to-datetime TS             the first offset at or after TS (the log end
                               when there is none)
  --by-duration D              as --to-datetime at now minus D: P7D, PT1H30M
                               (Kafka's ISO-8601 form) or 90m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changed := cmd.Flags().Changed
			if err := f.check(changed); err != nil {
				return err
			}
			group := args[0]
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				plan, err := planReset(ctx, c, group, &f, changed)
				if err != nil {
					return err
				}
				if f.execute {
					// One topic at a time: a refusal part way names the
					// topics already reset, so that nothing changed is unknown.
					var done []string
					for _, topic := range slices.Sorted(maps.Keys(plan)) {
						if err := c.ResetOffsets(ctx, group, topic, plan[topic]); err != nil {
							if client.Reason(err) == client.ReasonNonEmptyGroup {
								err = fmt.Errorf("assignments can only be reset if the group '%s' is inactive: %w", group, err)
							}
							if len(done) > 0 {
								return fmt.Errorf("%w (the offsets of %s were reset before this)", err, strings.Join(done, ", "))
							}
							return err
						}
						done = append(done, topic)
					}
				}
				if err := plan.write(cmd.OutOrStdout(), group); err != nil {
					return err
				}
				if !f.execute && !f.dryRun {
					fmt.Fprintln(cmd.ErrOrStderr(), "No offsets were changed: this is a preview. Add --execute to set them (or --dry-run to preview without this note).")
				}
				return nil
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.topic, "topic", "", "topic whose offsets to reset")
	fs.BoolVar(&f.allTopics, "all-topics", false, "reset every partition the group has a committed offset in")
	fs.Int32SliceVar(&f.partitions, "partitions", nil, "partitions of --topic to reset, comma-separated (default: all)")
	fs.BoolVar(&f.earliest, "to-earliest", false, "reset to each partition's log start")
	fs.BoolVar(&f.latest, "to-latest", false, "reset to each partition's log end")
	fs.BoolVar(&f.current, "to-current", false, "reset to the committed offset (the log end where there is none)")
	fs.Int64Var(&f.offset, "to-offset", 0, "reset to this offset")
	fs.Int64Var(&f.shiftBy, "shift-by", 0, "move each committed offset by this many (negative: back)")
	fs.StringVar(&f.datetime, "to-datetime", "", "reset to the first offset at or after this time (YYYY-MM-DDTHH:mm:SS.sss)")
	fs.StringVar(&f.byDuration, "by-duration", "", "reset to the first offset at or after now minus this (P7D, PT1H30M or 90m)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the new offsets without setting them (the default)")
	fs.BoolVar(&f.execute, "execute", false, "set the new offsets")
	return cmd
}

// saturatingAdd is a+b held within int64's range, so that a huge shift
// lands at the partition's end rather than wrapping to its start.
func saturatingAdd(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}
