package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/strata-broker/strata/broker"
)

// The health endpoints.
//
// /healthz is liveness: 200 whenever the process answers. Its body is "ok",
// or "degraded" with the partitions a storage failure took offline (a full
// disk, a failed device) and why. Restarting the broker gives no space back
// and moves the leadership of every partition it still serves, so an
// orchestrator's liveness probe must not restart it for that.
//
// /readyz is readiness: the same body, with 503 while a log directory is
// offline, so that the broker counts as not ready (a rolling restart waits
// for it, an alert fires) until its partitions recover.

// storageStatus is what the health endpoints ask the broker.
type storageStatus interface {
	DataDir() string
	OfflineReplicas() []broker.OfflineReplica
}

// maxHealthLines bounds the partitions a health body lists.
const maxHealthLines = 100

func healthz(b storageStatus) http.HandlerFunc { return healthHandler(b, http.StatusOK) }

func readyz(b storageStatus) http.HandlerFunc {
	return healthHandler(b, http.StatusServiceUnavailable)
}

// healthHandler answers "ok", or the offline partitions with degraded as the
// status.
func healthHandler(b storageStatus, degraded int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		offline := b.OfflineReplicas()
		if len(offline) == 0 {
			w.Write([]byte("ok\n"))
			return
		}
		w.WriteHeader(degraded)
		fmt.Fprintf(w, "degraded: log directory %s is offline: %d partition(s) failed\n", b.DataDir(), len(offline))
		for i, r := range offline {
			if i == maxHealthLines {
				fmt.Fprintf(w, "... and %d more\n", len(offline)-i)
				break
			}
			fmt.Fprintf(w, "%s-%d offline since %s: %v\n", r.Topic, r.Partition, r.Since.UTC().Format(time.RFC3339), r.Err)
		}
	}
}
