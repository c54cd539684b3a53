package testenv_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/testenv"
)

// franzGoTxnRecords is KGO_TEST_RECORDS for TestFranzGoTransactionSuite:
// the suite's default is 500,000, which takes minutes on two cores; the
// same code paths run with fewer. STRATA_FRANZ_RECORDS overrides it.
const franzGoTxnRecords = "50000"

// TestFranzGoTransactionSuite runs franz-go v1.22.3's own TestTxnEtl and
// TestGroupETL (from the module's test files, as its integration suite
// runs them) against a three-broker cluster. TestTxnEtl chains two
// consume-transform-produce loops (GroupTransactSession) over
// transactional topics, with group members joining and leaving, and
// checks that each record arrives exactly once; TestGroupETL does the
// same with plain consumer groups. Their KIP-848 subtests skip themselves:
// the new consumer protocol is not served.
func TestFranzGoTransactionSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs franz-go's integration tests against a three-broker cluster")
	}
	c := testenv.NewTestCluster(t, testenv.ClusterOptions{Brokers: 3,
		BrokerSettings: map[string]string{"auto.create.topics.enable": "false"}})
	records := franzGoTxnRecords
	if v := os.Getenv("STRATA_FRANZ_RECORDS"); v != "" {
		records = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tests := []string{"TestTxnEtl", "TestGroupETL"}
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-timeout", "9m",
		"-run", "^("+strings.Join(tests, "|")+")$", "github.com/twmb/franz-go/pkg/kgo")
	var seeds []string
	for _, b := range c.Brokers() {
		seeds = append(seeds, b.KafkaAddr())
	}
	cmd.Env = append(os.Environ(), "KGO_SEEDS="+strings.Join(seeds, ","), "KGO_TEST_RECORDS="+records)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("franz-go's transaction tests: %v\n%s", err, tail(string(out), 200))
	}
	for _, name := range tests {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Fatalf("%s did not pass (skipped?):\n%s", name, tail(string(out), 200))
		}
	}
	t.Logf("franz-go's %v passed in %v:\n%s", tests, time.Since(start).Round(time.Second), tail(string(out), 30))
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
