package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// clusterInfoJSON is the output of `cluster info --output json`; its field
// names are a stable interface for scripts: add fields, never rename them.
type clusterInfoJSON struct {
	// ControllerID is -1 while no controller is elected.
	ControllerID    int32               `json:"controller_id"`
	Brokers         []clusterBrokerJSON `json:"brokers"`
	Racks           []string            `json:"racks"`
	Topics          int                 `json:"topics"`
	Partitions      int                 `json:"partitions"`
	UnderReplicated int                 `json:"under_replicated_partitions"`
	Unavailable     int                 `json:"unavailable_partitions"`
}

type clusterBrokerJSON struct {
	ID        int32  `json:"id"`
	GRPCAddr  string `json:"grpc_addr"`
	KafkaAddr string `json:"kafka_addr"`
	Rack      string `json:"rack"`
	Replicas  int    `json:"replicas"`
	Leaders   int    `json:"leaders"`
}

// clusterInfo summarises md: brokers in id order, racks sorted, partition
// counts over the topics the caller may describe.
func clusterInfo(md *stratav1.MetadataResponse) clusterInfoJSON {
	out := clusterInfoJSON{ControllerID: md.GetControllerId(), Brokers: []clusterBrokerJSON{}, Racks: []string{}}
	racks := map[string]bool{}
	for _, r := range brokerRows(md, nil) {
		out.Brokers = append(out.Brokers, clusterBrokerJSON{ID: r.ID, GRPCAddr: r.GRPCAddr, KafkaAddr: r.KafkaAddr, Rack: r.Rack, Replicas: r.Replicas, Leaders: r.Leaders})
		if r.Rack != "" {
			racks[r.Rack] = true
		}
	}
	out.Racks = append(out.Racks, slices.Sorted(maps.Keys(racks))...)
	live := liveBrokers(md)
	for _, t := range md.GetTopics() {
		out.Topics++
		for _, p := range t.GetPartitions() {
			out.Partitions++
			if underReplicated(p) {
				out.UnderReplicated++
			}
			if unavailable(p, live) {
				out.Unavailable++
			}
		}
	}
	if out.ControllerID < 0 {
		out.ControllerID = -1
	}
	return out
}

func writeClusterInfo(w io.Writer, ci clusterInfoJSON) {
	controller := "none elected"
	for _, b := range ci.Brokers {
		if b.ID == ci.ControllerID {
			controller = fmt.Sprintf("%d (%s)", b.ID, b.GRPCAddr)
		}
	}
	if controller == "none elected" && ci.ControllerID >= 0 {
		controller = fmt.Sprintf("%d (not among the live brokers)", ci.ControllerID)
	}
	fmt.Fprintf(w, "Controller: %s\n", controller)
	racks := "no racks set"
	if len(ci.Racks) > 0 {
		racks = "racks " + strings.Join(ci.Racks, ", ")
		if n := countNoRack(ci.Brokers); n > 0 {
			racks += fmt.Sprintf(" (%d without a rack)", n)
		}
	}
	fmt.Fprintf(w, "Brokers: %d, %s\n", len(ci.Brokers), racks)
	fmt.Fprintf(w, "Topics: %d, partitions: %d, under-replicated: %d, unavailable: %d\n",
		ci.Topics, ci.Partitions, ci.UnderReplicated, ci.Unavailable)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGRPC\tKAFKA\tRACK\tREPLICAS\tLEADERS")
	for _, b := range ci.Brokers {
		id := fmt.Sprint(b.ID)
		if b.ID == ci.ControllerID {
			id += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", id, b.GRPCAddr, dash(b.KafkaAddr), dash(b.Rack), b.Replicas, b.Leaders)
	}
	tw.Flush()
}

func countNoRack(bs []clusterBrokerJSON) int {
	n := 0
	for _, b := range bs {
		if b.Rack == "" {
			n++
		}
	}
	return n
}

func newClusterInfoCmd(cf *clientFlags) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "info",
		Short: "The controller, the live brokers and their racks, and partition health at a glance",
		Long: `Print the cluster's active controller, its live brokers (addresses, rack,
replicas and leaders; * marks the controller), the racks they are in, and
how many partitions are under-replicated or unavailable (see strata topics
describe --under-replicated-partitions, --unavailable-partitions).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				md, err := c.Metadata(ctx)
				if err != nil {
					return err
				}
				ci := clusterInfo(md)
				if output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), ci)
				}
				writeClusterInfo(cmd.OutOrStdout(), ci)
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}
