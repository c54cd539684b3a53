package testenv_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/strata-broker/strata/testenv"
)

// TestDevStopRestart checks the Dev handle itself: a clean SIGTERM stop, a
// restart on the same ports, and a kill.
func TestDevStopRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	first := dev.Pid()
	if first == 0 {
		t.Fatal("Pid() = 0 for a running broker")
	}
	addrs := []string{dev.GRPCAddr, dev.HTTPAddr, dev.KafkaAddr, dev.EtcdAddr, dev.EtcdPeerAddr}
	healthz(t, dev)

	dev.Stop()
	if pid := dev.Pid(); pid != 0 {
		t.Fatalf("Pid() = %d after Stop", pid)
	}
	dev.Restart(t)
	if pid := dev.Pid(); pid == 0 || pid == first {
		t.Errorf("Pid() = %d after Restart; first run was %d", pid, first)
	}
	if got := []string{dev.GRPCAddr, dev.HTTPAddr, dev.KafkaAddr, dev.EtcdAddr, dev.EtcdPeerAddr}; !slices.Equal(got, addrs) {
		t.Errorf("addresses changed across Restart: %v, were %v", got, addrs)
	}
	healthz(t, dev)

	dev.Kill()
	if pid := dev.Pid(); pid != 0 {
		t.Fatalf("Pid() = %d after Kill", pid)
	}
}

func healthz(t *testing.T, dev *testenv.Dev) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + dev.HTTPAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %s", resp.Status)
	}
}
