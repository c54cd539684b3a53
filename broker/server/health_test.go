package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker"
)

type fakeStorage []broker.OfflineReplica

func (f fakeStorage) DataDir() string                          { return "/var/lib/strata" }
func (f fakeStorage) OfflineReplicas() []broker.OfflineReplica { return f }

func get(h http.HandlerFunc) (int, string) {
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec.Code, rec.Body.String()
}

// A broker with an offline log directory stays alive for its liveness
// probe and says what is offline; it is not ready until it recovers.
func TestHealthReportsOfflineLogDirectory(t *testing.T) {
	for _, h := range []http.HandlerFunc{healthz(fakeStorage(nil)), readyz(fakeStorage(nil))} {
		if code, body := get(h); code != http.StatusOK || body != "ok\n" {
			t.Errorf("healthy broker: %d %q, want 200 ok", code, body)
		}
	}

	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	full := fakeStorage{{Topic: "orders", Partition: 3, Since: since, Err: errors.New("write 00000000000000000000.log: no space left on device")}}
	for _, c := range []struct {
		h    http.HandlerFunc
		code int
	}{{healthz(full), http.StatusOK}, {readyz(full), http.StatusServiceUnavailable}} {
		code, body := get(c.h)
		if code != c.code {
			t.Errorf("offline partition: status %d, want %d", code, c.code)
		}
		for _, want := range []string{"degraded", "/var/lib/strata", "orders-3", "2026-03-01T12:00:00Z", "no space left on device"} {
			if !strings.Contains(body, want) {
				t.Errorf("offline partition: body %q lacks %q", body, want)
			}
		}
	}

	var many fakeStorage
	for i := range 2 * maxHealthLines {
		many = append(many, broker.OfflineReplica{Topic: "t", Partition: int32(i), Since: since, Err: errors.New("EIO")})
	}
	_, body := get(healthz(many))
	if lines := strings.Count(body, "\n"); lines > maxHealthLines+2 {
		t.Errorf("%d offline partitions: %d lines, want at most %d", len(many), lines, maxHealthLines+2)
	}
	if want := fmt.Sprintf("and %d more", maxHealthLines); !strings.Contains(body, want) {
		t.Errorf("%d offline partitions: body lacks %q", len(many), want)
	}
}
