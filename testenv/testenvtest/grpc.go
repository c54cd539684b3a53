package testenvtest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/testenv"
)

// MaxMsg lifts gRPC's 4 MiB default so a fetch of several MiB fits.
const MaxMsg = 64 << 20

// Dial opens a gRPC client to addr, closed when the test ends.
func Dial(t testing.TB, addr string) stratav1.StrataClient {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsg), grpc.MaxCallSendMsgSize(MaxMsg)),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

// RunStrata runs the strata CLI against addr and returns its stdout,
// stderr and exit error.
func RunStrata(t testing.TB, addr, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), append(args, "--bootstrap-server", addr)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// StrataCLI runs the strata binary as a user would, against dev's gRPC
// address, and returns its stdout; the test fails if it fails.
func StrataCLI(t testing.TB, dev *testenv.Dev, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := RunStrata(t, dev.GRPCAddr, stdin, args...)
	if err != nil {
		t.Fatalf("strata %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}
