package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/testenv"
)

func dialBroker(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// reflectedServices lists the services through server reflection v1, as
// grpcurl list does.
func reflectedServices(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	stream, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		out = append(out, s.GetName())
	}
	return out, nil
}

// The standard health service and server reflection answer a client with
// no credentials on a broker that enforces ACLs: probes and grpcurl carry
// none, and they need none, as Kafka's ApiVersions needs none.
func TestGRPCHealthAndReflection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := dialBroker(t, testenv.StartInProcess(t, map[string]string{"authorizer.class.name": "strata"}))

	// The ACLs are enforced: an anonymous client may not create a topic.
	_, err := stratav1.NewStrataClient(conn).CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "t", Partitions: 1})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("anonymous CreateTopic: %v; want PermissionDenied", err)
	}

	health := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "strata.v1.Strata", "strata.v1.Replication"} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v; want NotFound", err)
	}
	list, err := health.List(ctx, &healthpb.HealthListRequest{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := list.GetStatuses()["strata.v1.Strata"].GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("List: strata.v1.Strata is %v; want SERVING", got)
	}

	services, err := reflectedServices(ctx, conn)
	if err != nil {
		t.Fatalf("reflection v1: %v", err)
	}
	for _, want := range []string{"strata.v1.Strata", "strata.v1.Replication", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v; want %s among them", services, want)
		}
	}
	// The descriptor of a service, which grpcurl describe and call need.
	stream, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "strata.v1.Strata"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if fds := resp.GetFileDescriptorResponse().GetFileDescriptorProto(); len(fds) == 0 {
		t.Errorf("FileContainingSymbol(strata.v1.Strata) = %v; want its file", resp)
	}
	stream.CloseSend()

	// Older tools ask v1alpha only.
	alpha, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer alpha.CloseSend()
	if err := alpha.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if r, err := alpha.Recv(); err != nil || len(r.GetListServicesResponse().GetService()) == 0 {
		t.Errorf("reflection v1alpha: %v, %v; want the services", r, err)
	}
}

// grpc.reflection.enable=false turns reflection off and leaves health on.
func TestGRPCReflectionOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := dialBroker(t, testenv.StartInProcess(t, map[string]string{"grpc.reflection.enable": "false"}))
	if _, err := reflectedServices(ctx, conn); status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection when switched off: %v; want Unimplemented", err)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Check = %v, %v; want SERVING", resp.GetStatus(), err)
	}
}

// A health Watch sees the broker stop serving when it shuts down, and
// ends then, so that it does not hold the graceful stop (the shutdown
// timeout here is an hour: Run returning proves the stream ended).
func TestGRPCHealthWatchEndsAtShutdown(t *testing.T) {
	addr, cancel, done := runUntilCancelled(t)
	conn := dialBroker(t, addr.String())
	watch, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch message: %v, %v; want SERVING", resp.GetStatus(), err)
	}
	cancel()
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch at shutdown: %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Watch after NOT_SERVING: %v; want Unavailable", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
