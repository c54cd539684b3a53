package kafkatests_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// TestTransactionalCopyWalkthrough runs README's "Exactly-once copies"
// walk-through against `strata dev`: 100,000 records produced with the
// CLI, copied by txncopy (franz-go's GroupTransactSession) which is killed
// with SIGKILL after its first commits and started again, and the output
// read read_committed with the CLI: every record exactly once.
func TestTransactionalCopyWalkthrough(t *testing.T) {
	testenvtest.SkipShort(t)
	d := testenv.StartDev(t, testenv.DevOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// cmdCtx bounds each command; the consume's, a minute, so that a copy
	// that stopped short fails the test rather than waiting for records.
	cmdCtx := ctx
	strata := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(cmdCtx, testenv.Binary(t), append(args, "--bootstrap-server", d.GRPCAddr)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("strata %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	const total = 100_000
	strata("", "topics", "create", "orders-raw", "--partitions", "3")
	strata("", "topics", "create", "orders", "--partitions", "3")
	var in strings.Builder
	for i := 1; i <= total; i++ {
		fmt.Fprintf(&in, "order-%d\n", i)
	}
	strata(in.String(), "produce", "orders-raw")

	txncopy := filepath.Join(t.TempDir(), "txncopy")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", txncopy, "github.com/strata-broker/strata/cmd/txncopy").CombinedOutput(); err != nil {
		t.Fatalf("build txncopy: %v\n%s", err, out)
	}
	args := []string{"--bootstrap-server", d.KafkaAddr, "--from", "orders-raw", "--to", "orders"}

	cl, err := kgo.NewClient(kgo.SeedBrokers(d.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	committed := func() int64 {
		offs, err := adm.ListCommittedOffsets(ctx, "orders")
		if err != nil {
			return 0
		}
		var n int64
		offs.Each(func(o kadm.ListedOffset) { n += max(o.Offset, 0) })
		return n
	}

	// The first copy is killed once it has committed something.
	first := exec.CommandContext(ctx, txncopy, append(args, "--records-per-transaction", "100")...)
	var firstLog strings.Builder
	first.Stderr = &firstLog
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	await.True(t, 2*time.Minute, "the first copy's first commits", func() bool { return committed() > 0 })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	if at := committed(); at >= total {
		t.Fatalf("the copy had committed %d offsets when it was killed: nothing left to resume\n%s", at, firstLog.String())
	} else {
		t.Logf("copy killed at %d committed offsets of the output (records and markers)", at)
	}

	// The second copy resumes and exits once idle.
	second := exec.CommandContext(ctx, txncopy, append(args, "--idle-exit", "5s")...)
	secondLog, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("the resumed copy: %v\n%s", err, secondLog)
	}
	t.Logf("the resumed copy: %s", strings.TrimSpace(string(secondLog)))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the first copy's log:\n%s", firstLog.String())
		}
	})

	var cancelConsume context.CancelFunc
	cmdCtx, cancelConsume = context.WithTimeout(ctx, time.Minute)
	defer cancelConsume()
	out := strata("", "consume", "orders", "--isolation-level", "read_committed", "--from-beginning", "--max-messages", fmt.Sprint(total))
	got := strings.Fields(out)
	slices.Sort(got)
	want := make([]string, 0, total)
	for i := 1; i <= total; i++ {
		want = append(want, fmt.Sprintf("order-%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("strata consume read %d records, want order-1..order-%d once each", len(got), total)
	}
	// And nothing more: readAll fails on a record past the expected ones.
	readAll(ctx, t, []string{d.KafkaAddr}, "orders", kgo.ReadCommitted(), total)
}
