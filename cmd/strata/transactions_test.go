package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// transactionsRow returns the row of id in a transactions table, split
// into its columns.
func transactionsRow(t *testing.T, out, id string, columns int) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == columns && (f[0] == id || f[1] == id) {
			return f
		}
	}
	t.Fatalf("no row for %s in:\n%s", id, out)
	return nil
}

// TestTransactionsCommands: a Kafka transactional producer's id is listed
// and described while its transaction is open and after it commits, as
// kafka-transactions.sh shows them.
func TestTransactionsCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker with embedded etcd")
	}
	addrs := testenv.StartInProcessAddrs(t, nil)
	bs := "--bootstrap-server=" + addrs.GRPC.String()
	mustStrata(t, "", "topics", "create", "orders", "--partitions", "2", bs)
	if out := mustStrata(t, "", "transactions", "list", bs); strings.TrimSpace(out) != "TransactionalId  Coordinator  ProducerId  TransactionState" {
		t.Fatalf("list without transactions:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs.Kafka.String()), kgo.TransactionalID("copier"),
		kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	for _, p := range []int32{1, 0} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	row := transactionsRow(t, mustStrata(t, "", "transactions", "list", bs), "copier", 4)
	pid := row[2]
	if row[1] != "1" || row[3] != "Ongoing" {
		t.Errorf("list with the transaction open: %q", row)
	}
	if out := mustStrata(t, "", "transactions", "list", "--states", "CompleteCommit,Empty", bs); strings.Contains(out, "copier") {
		t.Errorf("list of other states shows the open transaction:\n%s", out)
	}
	if out := mustStrata(t, "", "transactions", "list", "--producer-ids", pid, "--duration-filter", "0", bs); !strings.Contains(out, "copier") {
		t.Errorf("list by its producer id:\n%s", out)
	}
	if out := mustStrata(t, "", "transactions", "list", "--duration-filter", "3600000", bs); strings.Contains(out, "copier") {
		t.Errorf("list of transactions open an hour:\n%s", out)
	}

	desc := mustStrata(t, "", "transactions", "describe", "--transactional-id", "copier", bs)
	if !strings.HasPrefix(desc, "CoordinatorId  TransactionalId  ProducerId  ProducerEpoch  TransactionState  TransactionTimeoutMs  CurrentTransactionStartTimeMs  TransactionDurationMs  TopicPartitions\n") {
		t.Errorf("describe header:\n%s", desc)
	}
	d := transactionsRow(t, desc, "copier", 9)
	if d[0] != "1" || d[2] != pid || d[4] != "Ongoing" || d[8] != "orders-0,orders-1" {
		t.Errorf("describe with the transaction open: %q", d)
	}
	if start, err := strconv.ParseInt(d[6], 10, 64); err != nil || start < before-1000 || start > time.Now().UnixMilli() {
		t.Errorf("start time %q, want about %d", d[6], before)
	}
	if _, err := strconv.ParseInt(d[7], 10, 64); err != nil {
		t.Errorf("duration %q: %v", d[7], err)
	}

	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	var dj transactionJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "transactions", "describe", "--transactional-id", "copier", "-o", "json", bs)), &dj); err != nil {
		t.Fatal(err)
	}
	if dj.TransactionState != "CompleteCommit" || strconv.FormatInt(dj.ProducerID, 10) != pid || strconv.FormatInt(dj.CurrentTransactionStartTimeMs, 10) != d[6] ||
		dj.TransactionDurationMs != -1 || len(dj.TopicPartitions) != 0 || dj.CoordinatorID != 1 {
		t.Errorf("describe after the commit: %+v", dj)
	}
	start := d[6]
	d = transactionsRow(t, mustStrata(t, "", "transactions", "describe", "--transactional-id", "copier", bs), "copier", 9)
	if d[4] != "CompleteCommit" || d[6] != start || d[7] != "None" || d[8] != "None" {
		t.Errorf("describe after the commit: %q", d)
	}
	var lj []transactionSummaryJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "transactions", "list", "-o", "json", bs)), &lj); err != nil {
		t.Fatal(err)
	}
	if len(lj) != 1 || lj[0].TransactionalID != "copier" || lj[0].TransactionState != "CompleteCommit" || lj[0].Coordinator != 1 {
		t.Errorf("list json: %+v", lj)
	}

	if code, _, errOut := strata(t, "", "transactions", "describe", "--transactional-id", "nobody", bs); code != 1 || !strings.Contains(errOut, `transactional id "nobody" does not exist`) {
		t.Errorf("describe of an unknown id: exit %d, %q", code, errOut)
	}
	if code, _, errOut := strata(t, "", "transactions", "describe", bs); code == 0 || !strings.Contains(errOut, "transactional-id") {
		t.Errorf("describe without an id: exit %d, %q", code, errOut)
	}
}
