package testenv_test

import (
	"os"
	"testing"

	"github.com/strata-broker/strata/testenv"
)

func TestMemoryReadsThisProcess(t *testing.T) {
	// Touch 64 MiB so the peak must be at least that.
	buf := make([]byte, 64<<20)
	for i := range buf {
		if i%4096 == 0 {
			buf[i] = 1
		}
	}
	rss, peak, err := testenv.Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if peak < 64<<20 || rss <= 0 || rss > peak {
		t.Fatalf("rss %d, peak %d after touching 64 MiB", rss, peak)
	}
	_ = buf[len(buf)-1]
}
