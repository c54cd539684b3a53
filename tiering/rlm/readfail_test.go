package rlm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/tiering/objstore/objstoretest"
)

// While the store is down, reads below the local log fail with a
// *ReadError (the broker's retriable error), each counted, and logged with
// the partition, offset and cause at most once per interval. The manifest
// of a partition not read yet is reported the same way, then not asked for
// again until manifestRetry has passed. Once the store is back, reads work.
func TestRemoteReadFailuresAreReportedCountedAndLogged(t *testing.T) {
	r := newRig(t, map[string]string{"local.retention.bytes": "1"})
	tierAway(t, r, 40)
	var logged bytes.Buffer
	r.m.readFailures.logger = slog.New(slog.NewJSONHandler(&logged, nil))
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	ctx := context.Background()
	r.store.FailReads.Store(true)

	_, _, remote, err := r.p.Read(ctx, 3, 700, nil)
	var re *ReadError
	if !remote || !errors.As(err, &re) || re.Topic != "t" || re.Partition != 0 || re.Offset != 3 || !errors.Is(err, objstoretest.ErrDown) {
		t.Fatalf("read at 3 with the store down: remote %v, %v; want a ReadError at offset 3 wrapping the store's error", remote, err)
	}
	if _, _, err := r.p.ReadPieces(ctx, 5, 1<<20); !errors.As(err, &re) || re.Offset != 5 {
		t.Fatalf("read in pieces at 5 with the store down: %v", err)
	}
	if got := r.metric("strata_tiering_remote_read_errors_total", "topic", "t"); got != 2 {
		t.Fatalf("remote read errors counted: %v, want 2", got)
	}
	if l := lines(); len(l) != 1 || l[0]["offset"] != 3.0 || l[0]["topic"] != "t" || !strings.Contains(l[0]["err"].(string), "down") {
		t.Fatalf("logged %v, want one line for offset 3 naming the cause", l)
	}

	r.clk.Advance(readFailureLogInterval)
	r.p.SetManifest(nil, -1) // as after a restart
	lists := r.store.ListCalls.Load()
	if err := r.p.EnsureManifest(ctx); !errors.As(err, &re) || re.Offset != -1 {
		t.Fatalf("manifest with the store down: %v, want a ReadError", err)
	}
	if l := lines(); len(l) != 2 || l[1]["offset"] != -1.0 || l[1]["failures_not_logged"] != 1.0 {
		t.Fatalf("logged %v, want a second line, for the manifest, counting the one not logged", l)
	}
	calls := r.store.ListCalls.Load() - lists
	if err := r.p.EnsureManifest(ctx); !errors.As(err, &re) {
		t.Fatalf("manifest again at once: %v, want the same failure", err)
	}
	if r.store.ListCalls.Load()-lists != calls {
		t.Fatal("the store was asked again for the manifest within manifestRetry")
	}
	if got := r.metric("strata_tiering_remote_read_errors_total", "topic", "t"); got != 3 {
		t.Fatalf("remote read errors counted: %v, want 3 (an answer from the last failure is not a read)", got)
	}

	r.store.FailReads.Store(false)
	r.clk.Advance(manifestRetry + time.Second)
	if err := r.p.EnsureManifest(ctx); err != nil {
		t.Fatalf("manifest with the store back: %v", err)
	}
	res, _, remote, err := r.p.Read(ctx, 3, 700, nil)
	if err != nil || !remote || len(res.Data) == 0 {
		t.Fatalf("read at 3 with the store back: %d bytes, remote %v, %v", len(res.Data), remote, err)
	}
	checkValues(t, res.Data, 3)
}
