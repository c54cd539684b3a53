package testenv_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/record"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/testenv/testenvtest"
)

// A compressed batch of a few kilobytes can inflate to over a hundred
// megabytes. Measured against a broker that decompressed a produced batch
// whole before checking anything: a 4 KB zstd batch inflating to 127 MiB
// was stored, and one produce naming four topics raised the broker's RSS
// from 42 to 425 MiB. Here two connections keep sending such produces (one
// topic per codec, each batch inflating to 127 MiB) to a broker in a
// 512 MiB memory cgroup. The broker must refuse every batch with
// MESSAGE_TOO_LARGE, write nothing, stay within a small peak and keep
// answering a well-behaved client within a second.
func TestCompressionBombsAreRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker; skipped with -short")
	}
	const (
		inflated = 127 << 20
		// The broker at rest is about 40 MiB; decompressing one bomb of
		// each kind at once needed over 400 MiB more.
		peakBound   = 128 << 20
		cgroupLimit = 512 << 20
		conns       = 2
		rounds      = 10
	)
	codecs := []record.Compression{record.ZSTD, record.GZIP, record.LZ4, record.ZSTD}
	bombs := make([][]byte, len(codecs))
	for i, c := range codecs {
		bombs[i] = bombBatch(t, c, inflated)
		t.Logf("%s bomb: %d bytes inflating to %d", c, len(bombs[i]), inflated)
	}

	dev := testenv.StartDev(t, testenv.DevOptions{})
	topics := make([]string, len(codecs))
	for i := range topics {
		topics[i] = fmt.Sprintf("bomb-%d", i)
	}
	createKafkaTopics(t, dev.KafkaAddr, topics...)
	pid := dev.Pid()
	testenv.LimitMemory(t, pid, cgroupLimit)
	watch := testenv.WatchKafka(dev.KafkaAddr)

	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		wg.Go(func() {
			errs <- produceBombs(dev.KafkaAddr, int32(c), rounds, topics, bombs)
		})
	}
	wg.Wait()
	close(errs)
	slowest, answered, failures := watch.Stop()
	_, peak, memErr := testenv.Memory(pid)

	if dev.Pid() != pid {
		t.Fatal("the broker exited under the compression bombs (killed by its memory cgroup?)")
	}
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
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
	assertTopicsEmpty(t, dev.KafkaAddr, topics...)
}

// produceBombs sends rounds produce requests (v7, the first with zstd) on
// one connection, each naming every topic with its bomb, and checks that
// every partition is refused with MESSAGE_TOO_LARGE.
func produceBombs(addr string, corrBase int32, rounds int, topics []string, bombs [][]byte) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = 1
	req.TimeoutMillis = 30000
	for i, topic := range topics {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = bombs[i]
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	for r := range rounds {
		corr := corrBase<<16 | int32(r)
		body, err := testenvtest.RoundTrip(conn, req, corr, 60*time.Second)
		if err != nil {
			return fmt.Errorf("produce round %d: %w", r, err)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = req.Version
		if err := resp.ReadFrom(body); err != nil {
			return fmt.Errorf("decode produce response: %w", err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != kerr.MessageTooLarge.Code {
					return fmt.Errorf("produce of a bomb to %s: error %v, want MESSAGE_TOO_LARGE", rt.Topic, kerr.ErrorForCode(rp.ErrorCode))
				}
			}
		}
	}
	return nil
}

// bombBatch is a v2 batch of one record whose value is inflated zero bytes,
// compressed with c as a stream, so that building it never holds the
// inflated records.
func bombBatch(t testing.TB, c record.Compression, inflated int) []byte {
	t.Helper()
	// The record: length, attributes, timestamp delta, offset delta, null
	// key, the value's length and bytes, no headers.
	var head []byte
	valueLen := binary.AppendVarint(nil, int64(inflated))
	bodyLen := 1 + 1 + 1 + 1 + len(valueLen) + inflated + 1
	head = binary.AppendVarint(head, int64(bodyLen))
	head = append(head, 0)
	head = binary.AppendVarint(head, 0)
	head = binary.AppendVarint(head, 0)
	head = binary.AppendVarint(head, -1)
	head = append(head, valueLen...)
	records := io.MultiReader(bytes.NewReader(head), io.LimitReader(zeros{}, int64(inflated)), bytes.NewReader([]byte{0}))

	var packed bytes.Buffer
	var w io.WriteCloser
	switch c {
	case record.GZIP:
		gw, err := gzip.NewWriterLevel(&packed, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		w = gw
	case record.LZ4:
		// 64 KiB blocks, as Kafka's clients write them.
		lw := lz4.NewWriter(nil)
		if err := lw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			t.Fatal(err)
		}
		lw.Reset(&packed)
		w = lw
	case record.ZSTD:
		zw, err := zstd.NewWriter(&packed, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("no bomb for codec %s", c)
	}
	// Through Write only: lz4's ReadFrom fails on a writer already written to.
	if _, err := io.Copy(struct{ io.Writer }{w}, records); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	batch := make([]byte, record.HeaderSize, record.HeaderSize+packed.Len())
	binary.BigEndian.PutUint32(batch[8:], uint32(record.HeaderSize-record.LogOverhead+packed.Len()))
	binary.BigEndian.PutUint32(batch[12:], 0xffffffff) // leader epoch -1
	batch[16] = 2                                      // magic
	binary.BigEndian.PutUint16(batch[21:], uint16(c))
	binary.BigEndian.PutUint32(batch[23:], 0) // last offset delta
	now := time.Now().UnixMilli()
	binary.BigEndian.PutUint64(batch[27:], uint64(now))
	binary.BigEndian.PutUint64(batch[35:], uint64(now))
	binary.BigEndian.PutUint64(batch[43:], 0xffffffffffffffff) // producer id -1
	binary.BigEndian.PutUint16(batch[51:], 0xffff)             // producer epoch -1
	binary.BigEndian.PutUint32(batch[53:], 0xffffffff)         // base sequence -1
	binary.BigEndian.PutUint32(batch[57:], 1)                  // one record
	batch = append(batch, packed.Bytes()...)
	binary.BigEndian.PutUint32(batch[17:], record.Checksum(batch))
	if _, err := record.Validate(batch); err != nil {
		t.Fatalf("bomb batch: %v", err)
	}
	return batch
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
