package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-broker/strata/api/client"
	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

func newTransactionsCmd() *cobra.Command {
	cf := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "transactions",
		Short: "List and describe the transactions of transactional producers",
		Long: `List and describe transactional ids, as Kafka's kafka-transactions.sh does. Any
broker answers for every transactional id of the cluster, naming the broker
that coordinates it.`,
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newTransactionsListCmd(cf), newTransactionsDescribeCmd(cf))
	return cmd
}

// transactionSummaryJSON is one element of `transactions list --output
// json`; its field names are a stable interface for scripts.
type transactionSummaryJSON struct {
	TransactionalID  string `json:"transactional_id"`
	Coordinator      int32  `json:"coordinator"`
	ProducerID       int64  `json:"producer_id"`
	TransactionState string `json:"transaction_state"`
}

func newTransactionsListCmd(cf *clientFlags) *cobra.Command {
	var (
		output      outputFormat
		states      []string
		producerIDs []int64
		durationMs  int64
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List transactional ids with their coordinator, producer id and state",
		Long: `List the transactional ids of the cluster, as kafka-transactions.sh list does:

  TransactionalId Coordinator ProducerId TransactionState

--states, --producer-ids and --duration-filter narrow the list as Kafka's
ListTransactions does; --duration-filter keeps transactions open at least that
many milliseconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := client.TransactionFilter{States: states, ProducerIDs: producerIDs, MinDuration: time.Duration(durationMs) * time.Millisecond}
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				txns, err := c.ListTransactions(ctx, f)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if output == outputJSON {
					out := make([]transactionSummaryJSON, 0, len(txns))
					for _, s := range txns {
						out = append(out, transactionSummaryJSON{TransactionalID: s.GetTransactionalId(), Coordinator: s.GetCoordinator(),
							ProducerID: s.GetProducerId(), TransactionState: s.GetState()})
					}
					return writeJSON(w, out)
				}
				tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "TransactionalId\tCoordinator\tProducerId\tTransactionState")
				for _, s := range txns {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.GetTransactionalId(), s.GetCoordinator(), s.GetProducerId(), s.GetState())
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().StringSliceVar(&states, "states", nil, "only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort), comma-separated")
	cmd.Flags().Int64SliceVar(&producerIDs, "producer-ids", nil, "only these producer ids, comma-separated")
	cmd.Flags().Int64Var(&durationMs, "duration-filter", 0, "only transactions open at least this many milliseconds")
	return cmd
}

// transactionJSON is the output of `transactions describe --output json`.
// The start time is that of the latest transaction (-1 for none), the
// duration that of the open one (-1 when none is open).
type transactionJSON struct {
	CoordinatorID                 int32    `json:"coordinator_id"`
	TransactionalID               string   `json:"transactional_id"`
	ProducerID                    int64    `json:"producer_id"`
	ProducerEpoch                 int32    `json:"producer_epoch"`
	TransactionState              string   `json:"transaction_state"`
	TransactionTimeoutMs          int32    `json:"transaction_timeout_ms"`
	CurrentTransactionStartTimeMs int64    `json:"current_transaction_start_time_ms"`
	TransactionDurationMs         int64    `json:"transaction_duration_ms"`
	TopicPartitions               []string `json:"topic_partitions"`
	Groups                        []string `json:"groups,omitempty"`
}

func newTransactionsDescribeCmd(cf *clientFlags) *cobra.Command {
	var (
		output outputFormat
		id     string
	)
	cmd := &cobra.Command{
		Use:   "describe --transactional-id ID",
		Short: "Show a transactional id's producer, state and open transaction",
		Long: `Show a transactional id as kafka-transactions.sh describe does:

  CoordinatorId TransactionalId ProducerId ProducerEpoch TransactionState
  TransactionTimeoutMs CurrentTransactionStartTimeMs TransactionDurationMs
  TopicPartitions

The partitions and duration are those of the open (or completing) transaction,
"None" when none is open; the start time is that of the latest transaction.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cf.admin(cmd, func(ctx context.Context, c *client.Client) error {
				d, err := c.DescribeTransaction(ctx, id)
				if err != nil {
					if client.Reason(err) == client.ReasonTransactionalIDNotFound {
						return fmt.Errorf("transactional id %q does not exist", id)
					}
					return err
				}
				out := describeTransaction(d, time.Now())
				if output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), out)
				}
				writeTransactionDescribe(cmd.OutOrStdout(), out)
				return nil
			})
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().StringVar(&id, "transactional-id", "", "the transactional id to describe")
	_ = cmd.MarkFlagRequired("transactional-id") // fails only for an undefined flag
	return cmd
}

func describeTransaction(d *stratav1.TransactionDescription, now time.Time) transactionJSON {
	out := transactionJSON{
		CoordinatorID: d.GetCoordinator(), TransactionalID: d.GetTransactionalId(),
		ProducerID: d.GetProducerId(), ProducerEpoch: d.GetProducerEpoch(), TransactionState: d.GetState(),
		TransactionTimeoutMs: d.GetTransactionTimeoutMs(), CurrentTransactionStartTimeMs: -1, TransactionDurationMs: -1,
		TopicPartitions: []string{}, Groups: d.GetGroups(),
	}
	if start := d.GetTransactionStartTimeMs(); start >= 0 {
		out.CurrentTransactionStartTimeMs = start
		// A completed transaction keeps its start time, but a duration
		// growing after its end would read as a transaction still open.
		if open := d.GetState(); open == "Ongoing" || open == "PrepareCommit" || open == "PrepareAbort" {
			out.TransactionDurationMs = max(now.UnixMilli()-start, 0)
		}
	}
	for _, tp := range d.GetPartitions() {
		for _, p := range tp.GetPartitions() {
			out.TopicPartitions = append(out.TopicPartitions, fmt.Sprintf("%s-%d", tp.GetTopic(), p))
		}
	}
	return out
}

// writeTransactionDescribe prints d as kafka-transactions.sh describe
// does: a header and one row, "None" for what does not exist.
func writeTransactionDescribe(w io.Writer, d transactionJSON) {
	none := func(n int64) string {
		if n < 0 {
			return "None"
		}
		return strconv.FormatInt(n, 10)
	}
	parts := "None"
	if len(d.TopicPartitions) > 0 {
		parts = strings.Join(d.TopicPartitions, ",")
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CoordinatorId\tTransactionalId\tProducerId\tProducerEpoch\tTransactionState\tTransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTransactionDurationMs\tTopicPartitions")
	fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", d.CoordinatorID, d.TransactionalID, d.ProducerID, d.ProducerEpoch,
		d.TransactionState, d.TransactionTimeoutMs, none(d.CurrentTransactionStartTimeMs), none(d.TransactionDurationMs), parts)
	tw.Flush()
}
