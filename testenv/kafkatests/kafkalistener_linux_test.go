package kafkatests_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// Attacks on the Kafka listener itself, each against a `strata dev` in a
// 1 GiB memory cgroup while a well-behaved client asks ApiVersions ten
// times a second on its own connection. Measured against the broker before
// its requests were bounded: a 16 MiB Fetch added 556 MB of heap and three
// 100 MiB ones pinned it at 3 GiB (kmsg allocates an array's structs before
// reading them, 64 bytes for 2 on the wire); 1,000 connections each sending
// 700 KB of a 1 MiB frame raised RSS from 238 to 990 MiB; 10,000 idle
// connections were all held (+634 MB of heap).

const listenerCgroupLimit = 1 << 30

// hostileFetch is a Fetch v4 frame of about size bytes whose topic count
// is as large as kmsg lets through, each topic 2 bytes of the count's 6:
// kmsg allocates a 64-byte struct for every one before finding the frame
// too short.
func hostileFetch(size int) []byte {
	b := listenerHeader(1, 4)
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // replica id -1
	b = binary.BigEndian.AppendUint32(b, 500)        // max wait ms
	b = binary.BigEndian.AppendUint32(b, 1)          // min bytes
	b = binary.BigEndian.AppendUint32(b, 1<<20)      // max bytes
	b = append(b, 0)                                 // isolation level
	rest := size - len(b) - 4
	b = binary.BigEndian.AppendUint32(b, uint32(rest/2))
	return listenerFrame(append(b, make([]byte, rest)...))
}

// hostileMetadata is a Metadata v9 (flexible) frame of about size bytes
// whose topic count is as large as kmsg lets through, each topic an empty
// name and one unknown tagged field: a struct, a string and a map apiece.
func hostileMetadata(size int) []byte {
	b := listenerHeader(3, 9)
	b = append(b, 0) // header tagged fields
	rest := size - len(b) - 5
	b = binary.AppendUvarint(b, uint64(rest/2+1))
	return listenerFrame(append(b, bytes.Repeat([]byte{1}, rest)...))
}

// listenerHeader is a request header v1 of the API key and version.
func listenerHeader(key, version int16) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint16(b, 7)
	return append(b, "hostile"...)
}

func listenerFrame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// sendUntilClosed sends frame on a new connection and waits for the broker
// to close it (it cannot answer a frame that does not decode).
func sendUntilClosed(addr string, frame []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	// The broker may close before reading it all; that is its answer.
	go c.Write(frame)
	if _, err := io.Copy(io.Discard, c); err != nil && !isConnReset(err) {
		return err
	}
	return nil
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// startAttackedDev starts a broker with the settings, in a 1 GiB memory
// cgroup, and a well-behaved client watching it; it returns the broker,
// its resident memory before the attack, and a check to run after it.
func startAttackedDev(t *testing.T, settings ...string) (*testenv.Dev, int64, func(peakBound int64)) {
	t.Helper()
	var args []string
	for _, s := range settings {
		args = append(args, "--config", s)
	}
	dev := testenv.StartDev(t, testenv.DevOptions{ExtraArgs: args})
	pid := dev.Pid()
	testenv.LimitMemory(t, pid, listenerCgroupLimit)
	before, _, err := testenv.Memory(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, peak, err := testenv.Memory(pid); t.Failed() && err == nil {
			t.Logf("the broker's peak RSS: %d MiB", peak>>20)
		}
	})
	watch := testenv.WatchKafka(dev.KafkaAddr)
	// Connected before the attack, as a client already at work is: the
	// attack comes from the same address.
	await.True(t, 10*time.Second, "the well-behaved client to connect", func() bool {
		return devMetric(t, dev.HTTPAddr, "strata_kafka_connections") >= 1
	})
	return dev, before, func(peakBound int64) {
		t.Helper()
		slowest, answered, failures := watch.Stop()
		_, peak, err := testenv.Memory(pid)
		if dev.Pid() != pid || err != nil {
			t.Fatalf("the broker exited under the attack (killed by its memory cgroup?): %v", err)
		}
		t.Logf("RSS before %d MiB, peak %d MiB; well-behaved client: %d answers, slowest %v", before>>20, peak>>20, answered, slowest)
		if peak > peakBound {
			t.Errorf("peak RSS %d MiB, want at most %d MiB", peak>>20, peakBound>>20)
		}
		if len(failures) > 0 || slowest > time.Second || answered == 0 {
			t.Errorf("well-behaved client: slowest answer %v, %d answered, failures %v; want every answer within 1s", slowest, answered, failures)
		}
	}
}

// Fetch and Metadata frames built to make decoding allocate as much as
// possible: first three of 16 MiB at once (over the limit of requests
// other than Produce, which they shared with Produce's 100 MiB before),
// then sixteen connections sending 512 KiB Fetches and 256 KiB Metadata
// requests as fast as the broker closes them. Each may take 80 or 96 MiB
// to decode, so they must wait for each other within the request memory
// budget (queued.max.request.bytes, 256 MiB by default): the broker at
// rest is about 40 MiB.
func TestHostileFetchAndMetadataFramesAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const (
		peakBound = 400 << 20
		workers   = 16
		rounds    = 8
	)
	dev, _, check := startAttackedDev(t)

	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds+3)
	big := hostileFetch(16 << 20)
	for range 3 {
		wg.Go(func() { errs <- sendUntilClosed(dev.KafkaAddr, big) })
	}
	wg.Wait()
	fetch, metadata := hostileFetch(512<<10), hostileMetadata(256<<10)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				frame := fetch
				if (w+r)%2 == 1 {
					frame = metadata
				}
				if err := sendUntilClosed(dev.KafkaAddr, frame); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	check(peakBound)
}

// A thousand connections each send 700 KB of a 1 MiB Produce frame and
// stop. The frames in progress may hold no more than the request memory
// budget (128 MiB here), the rest waiting their turn, and each is cut off
// socket.request.timeout.ms (1 s here) after it started arriving.
func TestSlowPartialFramesAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const (
		conns     = 1000
		frameSize = 1 << 20
		sent      = 700 << 10
		peakBound = 250 << 20
	)
	dev, _, check := startAttackedDev(t, "queued.max.request.bytes=134217728",
		"socket.request.timeout.ms=1000", "max.connections.per.ip=2000")

	partial := listenerHeader(0, 7)
	partial = binary.BigEndian.AppendUint16(partial, 0xffff) // no transactional id
	partial = append(partial, make([]byte, sent-len(partial))...)
	prefix := binary.BigEndian.AppendUint32(nil, frameSize)

	var closed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		c, err := net.DialTimeout("tcp", dev.KafkaAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		wg.Go(func() {
			if _, err := c.Write(append(prefix, partial...)); err != nil && !isConnReset(err) {
				errs <- err
				return
			}
			// The broker has nothing to answer: the next thing is its close.
			if _, err := io.Copy(io.Discard, c); err != nil && !isConnReset(err) {
				errs <- err
				return
			}
			closed.Add(1)
		})
	}
	await.True(t, 90*time.Second, "the broker to cut off every stalled frame", func() bool {
		return closed.Load() == conns || dev.Pid() == 0
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	check(peakBound)
}

// Five thousand connections are opened from one address and left idle.
// Past max.connections.per.ip (1,000 by default) they are closed at once,
// and the rest after connections.max.idle.ms (3 s here). Idle, they cost
// little: no buffer is held for a connection between requests.
func TestIdleConnectionsAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const (
		conns     = 5000
		perIP     = 1000 // the default
		growBound = 64 << 20
		peakBound = 400 << 20
	)
	dev, _, check := startAttackedDev(t, "connections.max.idle.ms=3000")
	heldBefore := goMemory(t, dev.HTTPAddr)

	var closed atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		c, err := net.DialTimeout("tcp", dev.KafkaAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		wg.Go(func() {
			var one [1]byte
			if _, err := c.Read(one[:]); !errors.Is(err, io.EOF) && !isConnReset(err) {
				t.Errorf("idle connection: read %v, want it closed by the broker", err)
				return
			}
			closed.Add(1)
		})
	}
	grown := goMemory(t, dev.HTTPAddr) - heldBefore
	rss, _, _ := testenv.Memory(dev.Pid())
	t.Logf("heap and stacks grew %d MiB with %d connections opened; RSS %d MiB", grown>>20, conns, rss>>20)
	await.True(t, 60*time.Second, "the broker to close every idle connection", func() bool {
		return closed.Load() == conns || dev.Pid() == 0
	})
	wg.Wait()
	refused := devMetric(t, dev.HTTPAddr, `strata_kafka_connections_rejected_total{limit="max_connections_per_ip"}`)
	idled := devMetric(t, dev.HTTPAddr, `strata_kafka_connections_timed_out_total{reason="idle"}`)
	t.Logf("%d connections: %v refused over max.connections.per.ip, %v closed idle", conns, refused, idled)
	// The watching client holds one of the address's connections.
	if want := float64(conns - perIP + 1); refused < want {
		t.Errorf("%v connections refused, want at least %v (over max.connections.per.ip)", refused, want)
	}
	if grown > growBound {
		t.Errorf("heap and stacks grew %d MiB with %d idle connections open, want at most %d MiB", grown>>20, conns, growBound>>20)
	}
	check(peakBound)
}

// goMemory is the broker's heap and goroutine stacks in use, from its
// metrics.
func goMemory(t *testing.T, httpAddr string) int64 {
	t.Helper()
	return int64(devMetric(t, httpAddr, "go_memstats_heap_inuse_bytes") + devMetric(t, httpAddr, "go_memstats_stack_inuse_bytes"))
}

// devMetric reads one series (name with its labels, as exposed) from the
// broker's /metrics; a series not exposed reads as 0.
func devMetric(t *testing.T, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}
