package main

import (
	"context"
	"errors"
	"io"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// healthFilter is one of kafka-topics.sh's --describe report options: only
// the partitions it selects are shown.
type healthFilter int

const (
	filterNone healthFilter = iota
	filterUnderReplicated
	filterUnderMinISR
	filterUnavailable
)

// pickFilter returns the filter the flags select; as in Kafka, at most one.
func pickFilter(underReplicated, underMinISR, unavailable bool) (healthFilter, error) {
	f, n := filterNone, 0
	for _, c := range []struct {
		set bool
		f   healthFilter
	}{{underReplicated, filterUnderReplicated}, {underMinISR, filterUnderMinISR}, {unavailable, filterUnavailable}} {
		if c.set {
			f = c.f
			n++
		}
	}
	if n > 1 {
		return filterNone, errors.New("give at most one of --under-replicated-partitions, --under-min-isr-partitions, --unavailable-partitions")
	}
	return f, nil
}

// defaultMinISR is Kafka's min.insync.replicas default, for a description
// that does not carry the config.
const defaultMinISR = 1

func minISR(d *stratav1.TopicDescription) int {
	for _, e := range d.GetConfigs() {
		if e.GetName() == "min.insync.replicas" {
			if n, err := strconv.Atoi(e.GetValue()); err == nil {
				return n
			}
		}
	}
	return defaultMinISR
}

// selectPartitions returns d with only the partitions f selects; live is
// the set of live brokers (needed by filterUnavailable only).
func selectPartitions(d *stratav1.TopicDescription, f healthFilter, live map[int32]bool) *stratav1.TopicDescription {
	if f == filterNone {
		return d
	}
	out := &stratav1.TopicDescription{Name: d.GetName(), TopicId: d.GetTopicId(), ReplicationFactor: d.GetReplicationFactor(), Configs: d.GetConfigs()}
	m := minISR(d)
	for _, p := range d.GetPartitions() {
		var keep bool
		switch f {
		case filterUnderReplicated:
			keep = underReplicated(p)
		case filterUnderMinISR:
			keep = underMinISR(p, m)
		case filterUnavailable:
			keep = unavailable(p, live)
		}
		if keep {
			out.Partitions = append(out.Partitions, p)
		}
	}
	return out
}

// describeTopics describes the named topic, or every topic when name is "",
// in name order, each with only the partitions f selects.
func describeTopics(ctx context.Context, c *client.Client, name string, f healthFilter) ([]*stratav1.TopicDescription, error) {
	names := []string{name}
	if name == "" {
		topics, err := c.ListTopics(ctx)
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for _, t := range topics {
			names = append(names, t.GetName())
		}
	}
	var live map[int32]bool
	if f == filterUnavailable {
		md, err := c.Metadata(ctx)
		if err != nil {
			return nil, err
		}
		live = liveBrokers(md)
	}
	var out []*stratav1.TopicDescription
	for _, n := range names {
		d, err := c.DescribeTopic(ctx, n)
		if name == "" && status.Code(err) == codes.NotFound {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, selectPartitions(d, f, live))
	}
	return out, nil
}

// writeDescriptions prints ds as kafka-topics.sh --describe does: with a
// report filter, only the selected partitions' lines, without the topic
// lines.
func writeDescriptions(w io.Writer, ds []*stratav1.TopicDescription, f healthFilter, allConfigs bool) {
	for _, d := range ds {
		if f == filterNone {
			writeDescribe(w, d, allConfigs)
			continue
		}
		for _, p := range d.GetPartitions() {
			writePartitionLine(w, d.GetName(), p)
		}
	}
}

// descriptionsJSON is the output of `topics describe --output json` without
// a topic name: every topic, and with a report filter only those that have
// a selected partition.
func descriptionsJSON(ds []*stratav1.TopicDescription, f healthFilter, allConfigs bool) []topicJSON {
	out := []topicJSON{}
	for _, d := range ds {
		if f != filterNone && len(d.GetPartitions()) == 0 {
			continue
		}
		out = append(out, describeJSON(d, allConfigs))
	}
	return out
}
