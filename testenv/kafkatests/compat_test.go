package kafkatests_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// The Kafka client compatibility matrix: real clients, each with its own
// topic, against a real 3-broker Strata cluster's Kafka listeners. Every
// client reports the same capabilities as JSON lines (compatResult); the
// external ones are programs in compat/, installed by compat/install.sh from
// the package registries, the Go ones live in compat_go_test.go.

const (
	// compatClientTimeout bounds one client's whole run.
	compatClientTimeout = 90 * time.Second
	// compatInstallTimeout bounds compat/install.sh: a cold install is an
	// apt-get update, two Debian packages and one npm package.
	compatInstallTimeout = 5 * time.Minute
	// compatPartitions is the partition count of every client's topic.
	compatPartitions = 3
	// compatRecords is how many records every client produces: 10 keyed
	// (keys key-0..key-4, twice each) and 10 unkeyed.
	compatRecords = 20
	// compatStderrTail is how many lines of a failing client's stderr the
	// test prints.
	compatStderrTail = 40
)

// The capabilities, in the matrix's column order. produce-acks0 is
// kafka-go's alone: its Writer defaults to acks=0, which gets no response.
// group runs after list-offsets (it adds records to the topic): a group
// consumer reads the whole topic and commits, compatGroupExtra is produced,
// and a second consumer of the same group (a new client instance) must read
// exactly those records and none of the committed ones. transactions runs
// on a second topic (compatTxnTopic): see compatCheckTxn.
const (
	capMetadata     = "metadata"
	capCreateTopic  = "create-topic"
	capProduce      = "produce"
	capProduceAcks0 = "produce-acks0"
	capConsume      = "consume"
	capGroup        = "group"
	capListOffsets  = "list-offsets"
	capDeleteTopic  = "delete-topic"
	capTransactions = "transactions"
	// capDenied, in the secured matrix only: a produce to a topic the
	// client's user may not write gets an authorization error, not a hang.
	capDenied = "denied"
)

var compatCapabilities = []string{capMetadata, capCreateTopic, capProduce, capProduceAcks0, capConsume, capGroup, capListOffsets, capTransactions, capDeleteTopic}

// compatResult is one capability's outcome, one JSON line of a client.
type compatResult struct {
	Capability string `json:"capability"`
	OK         bool   `json:"ok"`
	// NA marks a capability the client does not have (kcat cannot create
	// topics); it is not a failure.
	NA     bool   `json:"na,omitempty"`
	Detail string `json:"detail"`
}

func (r compatResult) cell() string {
	switch {
	case r.NA:
		return "n/a"
	case r.OK:
		return "pass"
	default:
		return "**FAIL**"
	}
}

// compatEnv is what a client run gets: the cluster's Kafka bootstrap
// addresses, its topic, the broker count and the topic's replication factor.
// transactions says whether the matrix asks for capTransactions: the secured
// matrix's user has no ACL on transactional ids, so it leaves them out.
type compatEnv struct {
	bootstrap    []string
	topic        string
	brokers      int
	rf           int
	sec          compatSecurity
	transactions bool
	// consumerProtocol makes the group capability use Kafka 4's consumer
	// group protocol (KIP-848: the broker assigns the partitions) rather
	// than the classic one, for the clients that speak it.
	consumerProtocol bool
}

// environ is what an external client program gets besides its arguments.
func (e compatEnv) environ() []string {
	env := e.sec.environ()
	if e.transactions {
		env = append(env, "COMPAT_TRANSACTIONS=1")
	}
	return env
}

// compatClient is one row of the matrix.
type compatClient struct {
	name    string // the subtest's name
	version string // what the README table shows
	// preCreate: the test creates and deletes the topic itself (kcat), and
	// compatTxnTopic when the matrix asks for transactions.
	preCreate bool
	// run runs the client and returns its results and its log (the
	// program's stderr).
	run func(ctx context.Context, env compatEnv) ([]compatResult, string, error)
	// sec is how the client connects (the secured matrix).
	sec compatSecurity
}

// topicName is the client's name as a topic name: the secured matrix's
// rows are named "client (MECHANISM)".
func (c compatClient) topicName() string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return -1
	}, strings.ReplaceAll(c.name, " ", "-"))
}

func compatClients() []compatClient {
	return []compatClient{
		{name: "kafka-python", version: "kafka-python 2.0.2 (Debian python3-kafka)", run: compatProgram("/usr/bin/python3", "compat/kafka_python.py")},
		{name: "kcat", version: "kcat 1.7.1 (librdkafka 2.0.2)", preCreate: true, run: compatProgram("bash", "compat/kcat.sh")},
		{name: "kafkajs", version: "kafkajs 2.2.4", run: compatProgram("node", "compat/kafkajs.js")},
		{name: "franz-go", version: "franz-go " + compatModVersion("github.com/twmb/franz-go"), run: compatGoClient(runFranzGo)},
		{name: "franz-go KIP-848", version: "franz-go " + compatModVersion("github.com/twmb/franz-go") + ", consumer group protocol (KIP-848)",
			run: compatGoClient(func(ctx context.Context, env compatEnv, r *compatReport) {
				env.consumerProtocol = true
				runFranzGo(ctx, env, r)
			})},
		{name: "sarama", version: "IBM/sarama " + compatModVersion("github.com/IBM/sarama"), run: compatGoClient(runSarama)},
		{name: "kafka-go", version: "segmentio/kafka-go " + compatModVersion("github.com/segmentio/kafka-go"), run: compatGoClient(runKafkaGo)},
	}
}

// TestKafkaClientMatrix runs every client of the matrix against one cluster,
// each as a subtest with its own topic, and logs the matrix as a Markdown
// table for README (also written to $STRATA_COMPAT_REPORT when set).
func TestKafkaClientMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("installs Kafka clients and runs them against a 3-broker cluster")
	}
	compatInstall(t)

	const brokers = 3
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: brokers})
	var bootstrap []string
	for _, b := range c.Brokers() {
		bootstrap = append(bootstrap, b.KafkaAddr())
	}
	compatWaitListening(t, bootstrap)

	clients := compatClients()
	results := runCompatMatrix(t, clients, compatEnv{bootstrap: bootstrap, brokers: brokers, rf: brokers}, compatCapabilities)
	table := compatTable(clients, results, compatCapabilities)
	t.Logf("Kafka client matrix:\n%s", table)
	if path := os.Getenv("STRATA_COMPAT_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Errorf("STRATA_COMPAT_REPORT: %v", err)
		}
	}
}

// runCompatMatrix runs each client as a subtest with its own topic,
// compat-NAME, in the cluster base describes, and returns their results
// by client. Every capability of want must be reported by every client.
func runCompatMatrix(t *testing.T, clients []compatClient, base compatEnv, want []string) map[string][]compatResult {
	results := make(map[string][]compatResult)
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			env := base
			env.topic = "compat-" + cl.topicName()
			env.sec = cl.sec
			env.transactions = slices.Contains(want, capTransactions)
			if env.sec.deniedTopic != "" {
				env.sec.deniedTopic += "-" + cl.topicName()
			}
			ctx, cancel := context.WithTimeout(t.Context(), compatClientTimeout)
			defer cancel()
			var preCreated []string
			if cl.preCreate {
				preCreated = append(preCreated, env.topic)
				if env.transactions {
					preCreated = append(preCreated, compatTxnTopic(env))
				}
			}
			for _, topic := range preCreated {
				compatCreateTopic(ctx, t, env, topic)
			}
			start := time.Now()
			res, logs, err := cl.run(ctx, env)
			results[cl.name] = res
			t.Logf("%s ran in %v", cl.name, time.Since(start).Round(time.Millisecond))
			for _, topic := range preCreated {
				compatDeleteTopic(ctx, t, env, topic)
			}
			failed := err != nil
			if err != nil {
				t.Errorf("%s: %v", cl.name, err)
			}
			for _, r := range res {
				t.Logf("%-13s %-8s %s", r.Capability, r.cell(), r.Detail)
				if !r.OK && !r.NA {
					failed = true
					t.Errorf("%s %s failed: %s", cl.name, r.Capability, r.Detail)
				}
			}
			for _, capability := range want {
				if capability == capProduceAcks0 {
					continue // kafka-go's alone
				}
				if !slices.ContainsFunc(res, func(r compatResult) bool { return r.Capability == capability }) {
					failed = true
					t.Errorf("%s reported nothing for %s", cl.name, capability)
				}
			}
			if failed {
				t.Logf("%s's log (last %d lines):\n%s", cl.name, compatStderrTail, compatTail(logs, compatStderrTail))
			}
		})
	}
	return results
}

// compatInstall runs compat/install.sh; a failure fails the test: a missing
// client is an environment to fix, not a reason to skip.
func compatInstall(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), compatInstallTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "bash", "compat/install.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("compat/install.sh: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Logf("compat/install.sh took %v:\n%s", d.Round(time.Millisecond), compatTail(string(out), 10))
	}
}

// compatWaitListening waits until every broker accepts connections on its
// Kafka address, so a missing listener fails here with one clear message
// rather than as a timeout in every client.
func compatWaitListening(t *testing.T, addrs []string) {
	t.Helper()
	await.NoError(t, 15*time.Second, "a Kafka listener on every broker", func() error {
		for _, addr := range addrs {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return fmt.Errorf("no Kafka listener at %s (the brokers' --kafka-addr): %v", addr, err)
			}
			conn.Close()
		}
		return nil
	})
}

// compatCreateTopic creates topic with kadm for a client that cannot.
func compatCreateTopic(ctx context.Context, t *testing.T, env compatEnv, topic string) {
	t.Helper()
	cl, err := franzClient(env)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, compatPartitions, int16(env.rf), nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s for %s (with kadm): %v", topic, t.Name(), err)
	}
}

// compatDeleteTopic deletes topic with kadm after a client that cannot.
func compatDeleteTopic(ctx context.Context, t *testing.T, env compatEnv, topic string) {
	t.Helper()
	cl, err := franzClient(env)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Errorf("delete %s after %s (with kadm): %v", topic, t.Name(), err)
	}
}

// compatProgram runs an external client program:
// PROGRAM BOOTSTRAP TOPIC BROKERS REPLICATION_FACTOR, one JSON line per
// capability on its stdout.
func compatProgram(interpreter, script string) func(context.Context, compatEnv) ([]compatResult, string, error) {
	return func(ctx context.Context, env compatEnv) ([]compatResult, string, error) {
		cmd := exec.CommandContext(ctx, interpreter, script,
			strings.Join(env.bootstrap, ","), env.topic, strconv.Itoa(env.brokers), strconv.Itoa(env.rf))
		cmd.WaitDelay = 5 * time.Second
		cmd.Env = append(os.Environ(), env.environ()...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		runErr := cmd.Run()
		var res []compatResult
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var r compatResult
			if err := json.Unmarshal(line, &r); err != nil || r.Capability == "" {
				// Not a result: keep it with the log.
				fmt.Fprintf(&stderr, "stdout: %s\n", line)
				continue
			}
			res = append(res, r)
		}
		if runErr != nil {
			runErr = fmt.Errorf("%s %s: %w", interpreter, filepath.Base(script), runErr)
		}
		return res, stderr.String(), runErr
	}
}

// compatReport collects the results of a client written in Go.
type compatReport struct {
	results []compatResult
	log     bytes.Buffer
}

// check runs one capability: fn returns a detail, or an error that fails it.
func (r *compatReport) check(capability string, fn func() (string, error)) bool {
	detail, err := fn()
	res := compatResult{Capability: capability, OK: err == nil, Detail: detail}
	if err != nil {
		res.Detail = err.Error()
	}
	r.results = append(r.results, res)
	return res.OK
}

func (r *compatReport) logf(format string, args ...any) {
	fmt.Fprintf(&r.log, format+"\n", args...)
}

func compatGoClient(run func(ctx context.Context, env compatEnv, r *compatReport)) func(context.Context, compatEnv) ([]compatResult, string, error) {
	return func(ctx context.Context, env compatEnv) ([]compatResult, string, error) {
		var r compatReport
		run(ctx, env, &r)
		return r.results, r.log.String(), nil
	}
}

// compatRecord is a record as the Go clients produce and read it; a nil key
// is an unkeyed record.
type compatRecord struct {
	partition int32
	offset    int64
	key       *string
	value     string
}

// compatExpected are the records every client produces: 10 keyed with keys
// key-0..key-4 twice each, then 10 unkeyed.
func compatExpected() []compatRecord {
	var recs []compatRecord
	for i := range 10 {
		k := fmt.Sprintf("key-%d", i%5)
		recs = append(recs, compatRecord{key: &k, value: fmt.Sprintf("keyed-%d", i)})
	}
	for i := range 10 {
		recs = append(recs, compatRecord{value: fmt.Sprintf("unkeyed-%d", i)})
	}
	return recs
}

// compatKeyPartition is the partition Kafka's default partitioner picks for
// a key: murmur2 made positive, modulo the partition count.
func compatKeyPartition(key string) int32 {
	return int32((murmur2([]byte(key)) & 0x7fffffff) % compatPartitions)
}

// murmur2 is the 32-bit MurmurHash2 of Kafka's Utils.murmur2 (seed
// 0x9747b28c), which every Java-compatible partitioner uses.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	n := len(data) / 4 * 4
	for i := 0; i < n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) % 4 {
	case 3:
		h ^= uint32(data[n+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[n+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[n])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// compatCheckKeyed fails when a keyed record is off its murmur2 partition.
func compatCheckKeyed(recs []compatRecord) error {
	var bad []string
	for _, rec := range recs {
		if rec.key != nil && rec.partition != compatKeyPartition(*rec.key) {
			bad = append(bad, fmt.Sprintf("%s on %d (murmur2: %d)", *rec.key, rec.partition, compatKeyPartition(*rec.key)))
		}
	}
	if bad != nil {
		return fmt.Errorf("keyed records off their murmur2 partition: %s", strings.Join(bad, ", "))
	}
	return nil
}

// compatCompare checks the records read back against compatExpected: the
// same keys and values exactly, keyed ones on their murmur2 partition, every
// partition starting at offset 0. It returns the count per partition.
func compatCompare(got []compatRecord) ([]int64, error) {
	str := func(rec compatRecord) string {
		if rec.key == nil {
			return "<null>=" + rec.value
		}
		return *rec.key + "=" + rec.value
	}
	var want, have []string
	for _, rec := range compatExpected() {
		want = append(want, str(rec))
	}
	for _, rec := range got {
		have = append(have, str(rec))
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(have, want) {
		return nil, fmt.Errorf("read %d records, want %d: %v", len(have), len(want), have)
	}
	if err := compatCheckKeyed(got); err != nil {
		return nil, err
	}
	counts := make([]int64, compatPartitions)
	first := []int64{-1, -1, -1}
	for _, rec := range got {
		counts[rec.partition]++
		if first[rec.partition] < 0 || rec.offset < first[rec.partition] {
			first[rec.partition] = rec.offset
		}
	}
	for p, o := range first {
		if o > 0 {
			return nil, fmt.Errorf("partition %d starts at offset %d, want 0", p, o)
		}
	}
	return counts, nil
}

// compatCheckOffsets checks ListOffsets results per partition: earliest 0,
// latest the partition's record count (counts, when the consume got them),
// by timestamp: a time before the produce gives offset 0 of a non-empty
// partition and a time after it none. Clients differ in how they say none:
// notFound is what this one returns then (-1 for Kafka's own answer, or -2
// for "the end offset", which kadm and kafkajs substitute).
func compatCheckOffsets(earliest, latest, before, after, counts []int64, notFound int64) (string, error) {
	detail := fmt.Sprintf("earliest %v, latest %v, by time (before) %v, (after) %v", earliest, latest, before, after)
	var sum int64
	for p := range compatPartitions {
		none := notFound
		if notFound == -2 {
			none = latest[p]
		}
		wantBefore := int64(0)
		if latest[p] == 0 {
			wantBefore = none
		}
		switch {
		case earliest[p] != 0:
			return "", fmt.Errorf("%s: earliest must be 0", detail)
		case counts != nil && latest[p] != counts[p]:
			return "", fmt.Errorf("%s: latest must be %v, the records read", detail, counts)
		case before[p] != wantBefore:
			return "", fmt.Errorf("%s: a time before the produce must give offset 0", detail)
		case after[p] != none:
			return "", fmt.Errorf("%s: a time after the produce must give no offset (%d)", detail, none)
		}
		sum += latest[p]
	}
	if sum != compatRecords {
		return "", fmt.Errorf("%s: latest must add up to %d", detail, compatRecords)
	}
	return detail, nil
}

// compatGroupID is the consumer group of a client's group capability: one
// per client, and the cluster is new on every run.
func compatGroupID(env compatEnv) string { return env.topic + "-group" }

// compatGroupExtra are the records the group capability produces after its
// first consumer committed: keys key-0..key-4 (all three partitions), values
// group-0..group-4.
func compatGroupExtra() []compatRecord {
	var recs []compatRecord
	for i := range 5 {
		k := fmt.Sprintf("key-%d", i)
		recs = append(recs, compatRecord{key: &k, value: fmt.Sprintf("group-%d", i)})
	}
	return recs
}

// compatCheckGroup checks the group capability: first, what the first group
// consumer read, must hold every offset below end (the end offsets before
// it started) of every partition; committed, the group's offsets after it
// committed and left, must be end; second, what the second consumer of the
// group read after compatGroupExtra was produced, must be exactly those
// records, none of the committed ones.
func compatCheckGroup(end []int64, first []compatRecord, committed []int64, second []compatRecord) (string, error) {
	seen := make([]map[int64]bool, compatPartitions)
	for p := range seen {
		seen[p] = map[int64]bool{}
	}
	dups := 0
	for _, rec := range first {
		if rec.partition < 0 || int(rec.partition) >= compatPartitions {
			return "", fmt.Errorf("first consumer read partition %d", rec.partition)
		}
		if seen[rec.partition][rec.offset] {
			dups++
		}
		seen[rec.partition][rec.offset] = true
	}
	for p := range compatPartitions {
		for o := range end[p] {
			if !seen[p][o] {
				return "", fmt.Errorf("first group consumer read %d records, missing partition %d offset %d (end offsets %v)", len(first), p, o, end)
			}
		}
		if int64(len(seen[p])) != end[p] {
			return "", fmt.Errorf("first group consumer read %d offsets of partition %d, end offset %d", len(seen[p]), p, end[p])
		}
	}
	if !slices.Equal(committed, end) {
		return "", fmt.Errorf("committed offsets %v after the first group consumer read everything, want the end offsets %v", committed, end)
	}
	var want, have []string
	for _, rec := range compatGroupExtra() {
		want = append(want, rec.value)
	}
	var old []string
	for _, rec := range second {
		have = append(have, rec.value)
		if rec.offset < end[rec.partition] {
			old = append(old, fmt.Sprintf("%d@%d", rec.partition, rec.offset))
		}
	}
	slices.Sort(have)
	if len(old) > 0 || !slices.Equal(have, want) {
		return "", fmt.Errorf("second group consumer read %v (committed records re-read: %v), want exactly %v", have, old, want)
	}
	if err := compatCheckKeyed(second); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("first consumer read all %d, committed %v; the second read exactly the %d new ones", len(first), committed, len(second))
	if dups > 0 {
		detail += fmt.Sprintf(" (first read %d records twice)", dups)
	}
	return detail, nil
}

// compatTxnTopic is the topic of the transactions capability, which the
// client creates (compatPartitions partitions) and deletes, or the test for
// a preCreate client; its transactional id has the same name.
func compatTxnTopic(env compatEnv) string { return env.topic + "-txn" }

// compatTxnCount is how many transactions the capability runs; compatTxnAborted
// is the one it aborts, the others commit.
const (
	compatTxnCount   = 3
	compatTxnAborted = 2
)

// compatTxnRecords are the records of transaction n (1..compatTxnCount):
// keys key-0..key-4 (all three partitions), values txnN-0..txnN-4.
func compatTxnRecords(n int) []compatRecord {
	var recs []compatRecord
	for i := range 5 {
		k := fmt.Sprintf("key-%d", i)
		recs = append(recs, compatRecord{key: &k, value: fmt.Sprintf("txn%d-%d", n, i)})
	}
	return recs
}

// compatTxnWant is what a consumer must read of each partition, in offset
// order: the values of every transaction, or of the committed ones only.
func compatTxnWant(withAborted bool) [][]string {
	want := make([][]string, compatPartitions)
	for n := 1; n <= compatTxnCount; n++ {
		if n == compatTxnAborted && !withAborted {
			continue
		}
		for _, rec := range compatTxnRecords(n) {
			p := compatKeyPartition(*rec.key)
			want[p] = append(want[p], rec.value)
		}
	}
	return want
}

// compatTxnTotal is how many records compatTxnWant(withAborted) holds: a
// consumer reads until it has that many, and compatCheckTxn then requires
// exactly those, in order. An aborted record leaking into read_committed
// sits before transaction 3's records of its partition, so it shows as a
// wrong sequence even when the reader stopped at the expected count.
func compatTxnTotal(withAborted bool) int {
	n := 0
	for _, vals := range compatTxnWant(withAborted) {
		n += len(vals)
	}
	return n
}

// compatCheckTxn checks the transactions capability: committed, read with
// read_committed, must be exactly the committed transactions' records in
// produce order per partition; uncommitted, read with read_uncommitted, must
// hold the aborted transaction's records too.
func compatCheckTxn(committed, uncommitted []compatRecord) (string, error) {
	perPartition := func(recs []compatRecord) ([][]string, error) {
		sorted := slices.Clone(recs)
		slices.SortFunc(sorted, func(a, b compatRecord) int {
			if a.partition != b.partition {
				return int(a.partition - b.partition)
			}
			return int(a.offset - b.offset)
		})
		out := make([][]string, compatPartitions)
		for _, rec := range sorted {
			if rec.partition < 0 || int(rec.partition) >= compatPartitions {
				return nil, fmt.Errorf("read partition %d", rec.partition)
			}
			out[rec.partition] = append(out[rec.partition], rec.value)
		}
		return out, compatCheckKeyed(recs)
	}
	for _, c := range []struct {
		isolation   string
		recs        []compatRecord
		withAborted bool
	}{{"read_committed", committed, false}, {"read_uncommitted", uncommitted, true}} {
		got, err := perPartition(c.recs)
		if err != nil {
			return "", fmt.Errorf("%s: %w", c.isolation, err)
		}
		want := compatTxnWant(c.withAborted)
		for p := range compatPartitions {
			if !slices.Equal(got[p], want[p]) {
				return "", fmt.Errorf("%s consumer read %v of partition %d, want %v (transaction %d aborted)", c.isolation, got[p], p, want[p], compatTxnAborted)
			}
		}
	}
	return fmt.Sprintf("%d transactions of 5 records, #%d aborted: read_committed read exactly the %d committed in order, read_uncommitted all %d",
		compatTxnCount, compatTxnAborted, len(committed), len(uncommitted)), nil
}

// compatTable is the matrix as Markdown: a row per client, a column per
// capability, then the detail of every failure.
func compatTable(clients []compatClient, results map[string][]compatResult, capabilities []string) string {
	var b strings.Builder
	b.WriteString("| client |")
	for _, c := range capabilities {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|---|")
	for range capabilities {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	var failures []string
	for _, cl := range clients {
		b.WriteString("| " + cl.version + " |")
		for _, c := range capabilities {
			cell := "—"
			for _, r := range results[cl.name] {
				if r.Capability == c {
					cell = r.cell()
					if !r.OK && !r.NA {
						failures = append(failures, fmt.Sprintf("- %s, %s: %s", cl.name, c, r.Detail))
					}
				}
			}
			if _, ran := results[cl.name]; !ran {
				cell = "not run"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	if failures != nil {
		b.WriteString("\nFailures:\n" + strings.Join(failures, "\n") + "\n")
	}
	return b.String()
}

// compatModVersion is a Go client's version as go.mod requires it.
func compatModVersion(path string) string {
	gomod, err := os.ReadFile("../../go.mod")
	if err == nil {
		re := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(path) + `\s+v(\S+)`)
		if m := re.FindSubmatch(gomod); m != nil {
			return string(m[1])
		}
	}
	return "(version unknown)"
}

func compatTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// kcat.sh cannot compute murmur2, so it carries a table of the partitions
// of key-0..key-4; it must agree with compatKeyPartition.
func TestKcatKeyPartitionTable(t *testing.T) {
	src, err := os.ReadFile("compat/kcat.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^key_partitions=\(([0-9 ]+)\)`).FindSubmatch(src)
	if m == nil {
		t.Fatal("compat/kcat.sh has no key_partitions=(...) line")
	}
	var want []string
	for i := range 5 {
		want = append(want, strconv.Itoa(int(compatKeyPartition(fmt.Sprintf("key-%d", i)))))
	}
	if got := strings.Fields(string(m[1])); !slices.Equal(got, want) {
		t.Errorf("kcat.sh key_partitions = %v, murmur2 says %v", got, want)
	}
	// Kafka's own test vectors (Utils.murmur2 in UtilsTest).
	for in, want := range map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107} {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

// The transactions capability's check must refuse an aborted record read
// with read_committed, a committed one missing, and records out of order,
// whichever client read them.
func TestCompatCheckTxn(t *testing.T) {
	// records lays out transactions txns as a partition's leader would:
	// offsets in produce order, a marker after each transaction.
	records := func(txns ...int) []compatRecord {
		next := make([]int64, compatPartitions)
		var recs []compatRecord
		for _, n := range txns {
			for _, rec := range compatTxnRecords(n) {
				rec.partition = compatKeyPartition(*rec.key)
				rec.offset = next[rec.partition]
				next[rec.partition]++
				recs = append(recs, rec)
			}
			for p := range next {
				next[p]++ // the marker
			}
		}
		return recs
	}
	committed, all := records(1, 3), records(1, 2, 3)
	if _, err := compatCheckTxn(committed, all); err != nil {
		t.Fatalf("the expected reads: %v", err)
	}
	swapped := slices.Clone(committed)
	swapped[0].offset, swapped[5].offset = swapped[5].offset, swapped[0].offset
	for name, c := range map[string]struct{ committed, uncommitted []compatRecord }{
		"aborted read_committed":      {records(1, 2), all},
		"committed missing":           {records(1), all},
		"aborted missing uncommitted": {committed, committed},
		"out of order":                {swapped, all},
		"aborted read after the rest": {records(1, 3, 2), all},
	} {
		if detail, err := compatCheckTxn(c.committed, c.uncommitted); err == nil {
			t.Errorf("%s: passed (%s)", name, detail)
		}
	}
}
