package kafkatests_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A FetchRequest of 2-byte empty partition entries decodes to a 70-byte
// struct per entry: measured against a broker that decoded any message
// under its 100 MiB limit, a 32 MiB Fetch added 2.4 GB of heap. Here a
// client sends such Fetches on several streams at once, of 32 MiB (over
// the limit of every request but Produce), of just under 4 MiB (within
// it, but decoding to 200 MB), and of 32 MiB gzip-compressed to 32 KB
// (which gRPC would inflate before any check), to a broker in a 1 GiB
// memory cgroup. Each
// must be refused with RESOURCE_EXHAUSTED before it is decoded; the broker
// stays within a stated peak, keeps answering a well-behaved client within
// a second, and serves gRPC afterwards.
func TestGRPCAmplifyingRequestsAreRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const (
		// Each stream's message is received whole before it is refused:
		// four of 32 MiB at once, in gRPC's pooled buffers, which the
		// garbage collector lets grow to twice that and more before it
		// collects, beside a broker at rest (about 45 MiB). One such
		// request decoded took 2.4 GB.
		peakBound   = 512 << 20
		cgroupLimit = 1 << 30
		streams     = 4
		rounds      = 3
	)
	dev := testenv.StartDev(t, testenv.DevOptions{})
	pid := dev.Pid()
	testenv.LimitMemory(t, pid, cgroupLimit)
	watch := testenv.WatchKafka(dev.KafkaAddr)

	// Field 1 (partitions), length 0: an empty FetchPartition, 2 bytes.
	big := bytes.Repeat([]byte{0x0a, 0x00}, 32<<20/2)
	fetches := []struct {
		msg  rawMessage
		opts []grpc.CallOption
	}{
		{msg: big},
		{msg: big[:4<<20-2]},
		// gzip-compressed (grpc-encoding), 32 KB on the wire.
		{msg: big, opts: []grpc.CallOption{grpc.UseCompressor(gzip.Name)}},
	}
	conn := rawConn(t, dev.GRPCAddr)
	var wg sync.WaitGroup
	errs := make(chan error, streams*rounds*len(fetches))
	for range streams {
		wg.Go(func() {
			for range rounds {
				for _, f := range fetches {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					var out rawMessage
					err := conn.Invoke(ctx, stratav1.Strata_Fetch_FullMethodName, f.msg, &out, f.opts...)
					cancel()
					if status.Code(err) != codes.ResourceExhausted {
						errs <- fmt.Errorf("a Fetch of %d bytes of empty entries (%d call options): %v, want RESOURCE_EXHAUSTED", len(f.msg), len(f.opts), err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	slowest, answered, failures := watch.Stop()
	_, peak, memErr := testenv.Memory(pid)

	if dev.Pid() != pid {
		t.Fatal("the broker exited under amplifying gRPC requests (killed by its memory cgroup?)")
	}
	for err := range errs {
		t.Error(err)
	}
	if memErr != nil {
		t.Fatalf("read the broker's memory: %v", memErr)
	}
	t.Logf("peak RSS %d MiB; well-behaved client: %d answers, slowest %v", peak>>20, answered, slowest)
	if peak > peakBound {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", peak>>20, peakBound>>20)
	}
	if len(failures) > 0 || slowest > time.Second || answered == 0 {
		t.Errorf("well-behaved client: slowest answer %v, %d answered, failures %v; want every answer within 1s", slowest, answered, failures)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := testenvtest.Dial(t, dev.GRPCAddr).Metadata(ctx, &stratav1.MetadataRequest{}); err != nil {
		t.Fatalf("Metadata after the attack: %v", err)
	}
}

// One connection opening thousands of streams was served them all. The
// broker now advertises a bound (SETTINGS_MAX_CONCURRENT_STREAMS) and
// refuses the streams beyond it with REFUSED_STREAM, which a client may
// retry.
func TestGRPCStreamsPerConnectionAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const streams = 2000
	dev := testenv.StartDev(t, testenv.DevOptions{})
	c, err := net.DialTimeout("tcp", dev.GRPCAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: stratav1.Strata_FetchStream_FullMethodName}, {Name: ":authority", Value: "strata"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	// Streams whose request never comes: each handler waits for it.
	for i := range streams {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hbuf.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
	advertised, refused := uint32(0), 0
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				break
			}
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				advertised = v
			}
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		case *http2.PingFrame:
			// Answered after every stream's headers were handled.
			done = f.IsAck() && f.Data == [8]byte{1}
		case *http2.GoAwayFrame:
			t.Fatalf("the broker closed the connection: %v %s", f.ErrCode, f.DebugData())
		}
	}
	t.Logf("advertised SETTINGS_MAX_CONCURRENT_STREAMS %d; %d of %d streams refused", advertised, refused, streams)
	if advertised == 0 || advertised >= streams {
		t.Errorf("the broker advertised SETTINGS_MAX_CONCURRENT_STREAMS %d, want a bound well under %d", advertised, streams)
	}
	if want := streams - int(advertised); advertised > 0 && refused < want {
		t.Errorf("%d streams refused, want at least the %d over the advertised %d", refused, want, advertised)
	}
}

// rawMessage is a message already encoded, sent and received as is.
type rawMessage []byte

// rawCodec passes rawMessages through; its name makes peers take it for
// protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(rawMessage)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return errors.New("rawCodec: want a *rawMessage")
	}
	*m = data.Materialize()
	return nil
}

// rawConn is a gRPC client sending rawMessages of up to 100 MiB.
func rawConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallSendMsgSize(100<<20), grpc.MaxCallRecvMsgSize(100<<20)),
	)
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
