package testenv_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/strata-broker/strata/api/client"
	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// A broker that runs out of file descriptors refuses connections for a
// while; it does not stop. Accepting with none left fails with EMFILE,
// which is not a timeout: the Kafka listener used to take it for a fatal
// error, return, and so shut the whole broker down.
func TestBrokerSurvivesRunningOutOfDescriptors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	dev := testenv.StartDev(t, testenv.DevOptions{})
	pid := dev.Pid()
	open, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	// Room for a few dozen more descriptors, then none.
	limit := uint64(len(open) + 40)
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Skipf("cannot lower the broker's descriptor limit: %v", err)
	}

	// Each accepted connection takes a descriptor; the kernel completes
	// handshakes into the listen backlog whether or not the broker accepts,
	// so these dials succeed and the broker meets EMFILE on accepting.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Every listener meets it: Kafka, gRPC and HTTP each accept in their
	// own loop, and each must survive.
	for i := range 2 * limit {
		addr := []string{dev.KafkaAddr, dev.GRPCAddr, dev.HTTPAddr}[i%3]
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	// Let the broker hit the limit and try again a few times.
	await.True(t, 30*time.Second, "the broker to have used every descriptor", func() bool {
		if dev.Pid() != pid {
			t.Fatal("the broker exited when it ran out of descriptors")
		}
		fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		return err == nil && uint64(len(fds)) >= limit-2
	})
	time.Sleep(500 * time.Millisecond) // several failed accepts, by the listener's backoff
	if dev.Pid() != pid {
		t.Fatal("the broker exited when it ran out of descriptors")
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// The descriptors come back and the broker serves a new client.
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.KafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	await.NoError(t, 30*time.Second, "a new Kafka client to be answered", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return cl.Ping(ctx)
	})
	await.NoError(t, 30*time.Second, "/healthz to answer", func() error {
		resp, err := http.Get("http://" + dev.HTTPAddr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	gc, err := client.Dial(context.Background(), dev.GRPCAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	await.NoError(t, 30*time.Second, "a gRPC call to be answered", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := gc.ListTopics(ctx)
		return err
	})
	if dev.Pid() != pid {
		t.Fatal("the broker restarted or exited")
	}
}
