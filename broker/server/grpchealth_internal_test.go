package server

import (
	"context"
	"errors"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type fakeReadiness struct {
	fakeStorage
	draining bool
}

func (f fakeReadiness) Draining() bool { return f.draining }

// The health service answers what /readyz does: not serving while a log
// directory is offline, nor once the broker drains.
func TestGRPCHealthFollowsReadiness(t *testing.T) {
	offline := fakeStorage{{Topic: "orders", Partition: 3, Since: time.Now(), Err: errors.New("no space left on device")}}
	for _, c := range []struct {
		name string
		b    fakeReadiness
		want healthpb.HealthCheckResponse_ServingStatus
	}{
		{"healthy", fakeReadiness{}, healthpb.HealthCheckResponse_SERVING},
		{"log directory offline", fakeReadiness{fakeStorage: offline}, healthpb.HealthCheckResponse_NOT_SERVING},
		{"draining", fakeReadiness{draining: true}, healthpb.HealthCheckResponse_NOT_SERVING},
	} {
		h := newGRPCHealth(c.b)
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != c.want {
			t.Errorf("%s: Check = %v, %v; want %v", c.name, resp.GetStatus(), err, c.want)
		}
		list, err := h.List(context.Background(), &healthpb.HealthListRequest{})
		if err != nil || list.GetStatuses()[""].GetStatus() != c.want {
			t.Errorf("%s: List = %v, %v; want %v", c.name, list, err, c.want)
		}
	}
}
