package server

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// grpcHealth is the standard gRPC health service (grpc.health.v1.Health),
// which Kubernetes gRPC probes, load balancers and grpc_health_probe call.
// It answers what /readyz does, computed at each call rather than kept in a
// table: NOT_SERVING while a log directory is offline, and once the broker
// drains for shutdown, so that a balancer stops sending it calls before
// the listener closes.
//
// The empty service name stands for the whole broker, as the protocol
// says; strata.v1.Strata and strata.v1.Replication answer the same.
type grpcHealth struct {
	healthpb.UnimplementedHealthServer
	b readiness
	// watchEvery is how often Watch looks again: the broker has no event
	// for a log directory going offline or coming back, and a probe that
	// watches tolerates a second's delay.
	watchEvery time.Duration
}

// readiness is what the health service asks the broker.
type readiness interface {
	storageStatus
	Draining() bool
}

// healthServices are the names the health service knows.
var healthServices = []string{"", stratav1.Strata_ServiceDesc.ServiceName, stratav1.Replication_ServiceDesc.ServiceName}

func newGRPCHealth(b readiness) *grpcHealth {
	return &grpcHealth{b: b, watchEvery: time.Second}
}

func (h *grpcHealth) status() healthpb.HealthCheckResponse_ServingStatus {
	if h.b.Draining() || len(h.b.OfflineReplicas()) > 0 {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

func known(service string) bool { return slices.Contains(healthServices, service) }

func (h *grpcHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !known(req.GetService()) {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: h.status()}, nil
}

func (h *grpcHealth) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	st := h.status()
	out := &healthpb.HealthListResponse{Statuses: make(map[string]*healthpb.HealthCheckResponse, len(healthServices))}
	for _, s := range healthServices {
		out.Statuses[s] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch sends the status at once and then each change, until the client
// goes away or the broker drains: GracefulStop waits for every stream, so
// the last message is NOT_SERVING and the stream ends with UNAVAILABLE, which
// a watching client takes as the cue to look elsewhere. An unknown service
// is SERVICE_UNKNOWN, not an error: the protocol lets it appear later (here
// it never does).
func (h *grpcHealth) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx := stream.Context()
	tick := time.NewTicker(h.watchEvery)
	defer tick.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		if known(req.GetService()) {
			st = h.status()
		}
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		if h.b.Draining() {
			return status.Error(codes.Unavailable, "the broker is shutting down")
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-tick.C:
		}
	}
}
