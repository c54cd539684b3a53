package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func newBrokersCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "brokers",
		Short: "The cluster's live brokers: list them, drain one",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newBrokersListCmd(cf), newBrokersDrainCmd(cf))
	return cmd
}

func newBrokersListCmd(cf *clientFlags) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the live brokers: addresses, rack, replicas and leaders",
		Long: `List the brokers registered in the cluster, one line each:

  ID              the broker's node id (* marks the controller)
  GRPC, KAFKA     its advertised gRPC and (first) Kafka addresses
  RACK            its broker.rack, "-" when unset
  REPLICAS        partition replicas placed on it
  LEADERS         partitions it leads
  BYTES           the size of the replicas' logs on its disk (a tiered
                  topic's segments in the object store are not counted)

Counts cover the topics the caller may describe; bytes are each broker's
own answer (Kafka's DescribeLogDirs), "-" without Describe on the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				md, err := c.Metadata(ctx)
				if err != nil {
					return err
				}
				dirs, err := c.DescribeLogDirs(ctx)
				switch status.Code(err) {
				case codes.OK:
				case codes.PermissionDenied, codes.Unimplemented:
					// Bytes need Describe on the cluster (and a broker
					// that serves DescribeLogDirs); the rest is still
					// worth listing.
					dirs = nil
				default:
					return err
				}
				rows := brokerRows(md, dirs)
				if output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), rows)
				}
				writeBrokers(cmd.OutOrStdout(), rows)
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}

// brokerRow is one broker of `brokers list`; its JSON field names are a
// stable interface for scripts: add fields, never rename them.
type brokerRow struct {
	ID         int32  `json:"id"`
	Controller bool   `json:"controller"`
	GRPCAddr   string `json:"grpc_addr"`
	KafkaAddr  string `json:"kafka_addr"`
	Rack       string `json:"rack"`
	Replicas   int    `json:"replicas"`
	Leaders    int    `json:"leaders"`
	Bytes      int64  `json:"bytes"` // -1: not known (no Describe on the cluster)
}

// brokerRows counts each broker's replicas and leaderships in md and its
// bytes in dirs (-1 for every broker when dirs is nil: unknown), in node id
// order.
func brokerRows(md *stratav1.MetadataResponse, dirs []*stratav1.DescribeLogDirsResponse) []brokerRow {
	byID := map[int32]*brokerRow{}
	var rows []*brokerRow
	for _, b := range md.GetBrokers() {
		r := &brokerRow{ID: b.GetNodeId(), Controller: b.GetNodeId() == md.GetControllerId(),
			GRPCAddr: b.GetGrpcAddr(), KafkaAddr: b.GetKafkaAddr(), Rack: b.GetRack()}
		byID[r.ID] = r
		rows = append(rows, r)
	}
	for _, t := range md.GetTopics() {
		for _, p := range t.GetPartitions() {
			for _, id := range p.GetReplicas() {
				if r := byID[id]; r != nil {
					r.Replicas++
				}
			}
			if r := byID[p.GetLeader()]; r != nil {
				r.Leaders++
			}
		}
	}
	if dirs == nil {
		for _, r := range rows {
			r.Bytes = -1
		}
	}
	for _, d := range dirs {
		if r := byID[d.GetNodeId()]; r != nil {
			for _, rep := range d.GetReplicas() {
				r.Bytes += rep.GetSizeBytes()
			}
		}
	}
	slices.SortFunc(rows, func(a, b *brokerRow) int { return int(a.ID - b.ID) })
	out := make([]brokerRow, len(rows))
	for i, r := range rows {
		out[i] = *r
	}
	return out
}

func writeBrokers(w io.Writer, rows []brokerRow) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGRPC\tKAFKA\tRACK\tREPLICAS\tLEADERS\tBYTES")
	for _, r := range rows {
		id := fmt.Sprint(r.ID)
		if r.Controller {
			id += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", id, r.GRPCAddr, dash(r.KafkaAddr), dash(r.Rack), r.Replicas, r.Leaders, humanBytes(r.Bytes))
	}
	tw.Flush()
}
