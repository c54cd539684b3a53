package testenv_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// brokerListRow is what `strata brokers list -o json` prints per broker.
type brokerListRow struct {
	ID       int32 `json:"id"`
	Replicas int   `json:"replicas"`
	Leaders  int   `json:"leaders"`
}

// README's walk-through of an elastic cluster, as a new user runs it:
// `strata testenv` with three brokers and MinIO, a tiered topic filled,
// a fourth broker started with add-broker.sh, `strata cluster rebalance`
// gives it replicas and leaders, `strata brokers drain 1` empties broker 1,
// and every record is still there.
func TestElasticClusterWalkthrough(t *testing.T) {
	testenvtest.SkipShort(t)
	dir := filepath.Join(t.TempDir(), "testenv-data")
	bin := testenv.Binary(t)
	env := exec.Command(bin, "testenv", "--brokers", "3", "--dir", dir)
	var envOut syncBuffer
	env.Stdout, env.Stderr = &envOut, &envOut
	if err := env.Start(); err != nil {
		t.Fatal(err)
	}
	envExited := make(chan error, 1)
	go func() { envExited <- env.Wait() }()
	t.Cleanup(func() {
		env.Process.Signal(os.Interrupt)
		select {
		case <-envExited:
		case <-time.After(time.Minute):
			env.Process.Kill()
			<-envExited
		}
	})
	await.NoError(t, 3*time.Minute, "strata testenv to be ready", func() error {
		select {
		case err := <-envExited:
			envExited <- err
			t.Fatalf("strata testenv exited: %v\n%s", err, envOut.String())
		default:
		}
		if !strings.Contains(envOut.String(), "Ctrl-C stops everything") {
			return errors.New("not ready")
		}
		return nil
	})
	raw, err := os.ReadFile(filepath.Join(dir, "env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e testenv.Env
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	// The object store as a user pastes it into strata replay or a
	// broker of their own: the exact URL and the credentials' exports.
	for _, want := range []string{"--object-store '" + e.ObjectStore + "'", "export AWS_ACCESS_KEY_ID='" + e.S3.AccessKey + "'",
		"export AWS_SECRET_ACCESS_KEY='" + e.S3.SecretKey + "'"} {
		if e.ObjectStore == "" || !strings.Contains(envOut.String(), want) {
			t.Errorf("strata testenv printed no %q:\n%s", want, envOut.String())
		}
	}
	bs := e.Brokers[0].GRPCAddr
	strata := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := testenvtest.RunStrata(t, bs, stdin, args...)
		if err != nil {
			t.Fatalf("strata %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	brokers := func() map[int32]brokerListRow {
		t.Helper()
		var rows []brokerListRow
		if err := json.Unmarshal([]byte(strata("", "brokers", "list", "-o", "json")), &rows); err != nil {
			t.Fatal(err)
		}
		m := map[int32]brokerListRow{}
		for _, r := range rows {
			m[r.ID] = r
		}
		return m
	}

	strata("", "topics", "create", "history", "--partitions", "6", "--replication-factor", "2",
		"--config", "remote.storage.enable=true", "--config", "min.insync.replicas=2")
	const n = 3000
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "record-%d-%s\n", i, strings.Repeat("x", 200))
	}
	strata(lines.String(), "produce", "history", "--acks", "all")

	add := exec.Command("sh", filepath.Join(dir, "add-broker.sh"), "4")
	var addOut syncBuffer
	add.Stdout, add.Stderr = &addOut, &addOut
	if err := add.Start(); err != nil {
		t.Fatal(err)
	}
	addExited := make(chan error, 1)
	go func() { addExited <- add.Wait() }()
	t.Cleanup(func() {
		add.Process.Signal(os.Interrupt)
		select {
		case <-addExited:
		case <-time.After(time.Minute):
			add.Process.Kill()
			<-addExited
		}
		if t.Failed() {
			t.Logf("broker 4:\n%s", addOut.String())
		}
	})
	await.True(t, time.Minute, "broker 4 to join", func() bool {
		_, ok := brokers()[4]
		return ok
	})
	if b := brokers()[4]; b.Replicas != 0 {
		t.Fatalf("a new broker starts with %d replicas", b.Replicas)
	}

	out := strata("", "cluster", "rebalance", "--wait", "2m")
	t.Logf("rebalance:\n%s", out)
	after := brokers()
	if after[4].Replicas == 0 || after[4].Leaders == 0 {
		t.Fatalf("after the rebalance broker 4 has %d replicas and %d leaders:\n%s", after[4].Replicas, after[4].Leaders, strata("", "topics", "describe", "history"))
	}

	out = strata("", "brokers", "drain", "1", "--wait", "2m")
	t.Logf("drain:\n%s", out)
	after = brokers()
	if after[1].Replicas != 0 || after[1].Leaders != 0 {
		t.Fatalf("after the drain broker 1 has %d replicas and %d leaders:\n%s", after[1].Replicas, after[1].Leaders, strata("", "topics", "describe", "history"))
	}
	desc := strata("", "topics", "describe", "history")
	if strings.Contains(desc, "Adding Replicas") || strings.Contains(desc, "Removing Replicas") {
		t.Fatalf("moves left after --wait:\n%s", desc)
	}

	got := strings.Split(strings.TrimSpace(strata("", "consume", "history", "--from-beginning", "--exit-at-end")), "\n")
	seen := map[int]bool{}
	for _, l := range got {
		parts := strings.SplitN(l, "-", 3)
		if len(parts) != 3 || parts[0] != "record" {
			continue
		}
		i, err := strconv.Atoi(parts[1])
		if err != nil {
			t.Fatalf("record %q", l)
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records after the moves, want %d", len(seen), n)
	}
}
