package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/api/client"
)

func micros(n int) time.Duration { return time.Duration(n) * time.Microsecond }

func TestBootstrapFlagBeatsEnvBeatsDefault(t *testing.T) {
	for _, c := range []struct{ flag, env, want string }{
		{"", "", client.DefaultAddr},
		{"", "broker:1", "broker:1"},
		{"flag:2", "broker:1", "flag:2"},
		{"", "  ", client.DefaultAddr},
	} {
		if got := resolveBootstrap(c.flag, c.env); got != c.want {
			t.Errorf("flag %q env %q: %q, want %q", c.flag, c.env, got, c.want)
		}
	}
}

func TestParseConfigs(t *testing.T) {
	got, err := parseConfigs("config", []string{"retention.ms=1000", "x=a=b", "empty="})
	if err != nil {
		t.Fatal(err)
	}
	if got["retention.ms"] != "1000" || got["x"] != "a=b" || got["empty"] != "" || len(got) != 3 {
		t.Errorf("%v", got)
	}
	for _, bad := range [][]string{{"novalue"}, {"=v"}, {"a=1", "a=2"}} {
		if _, err := parseConfigs("config", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSeparatorEscapes(t *testing.T) {
	for in, want := range map[string]string{"": "", `\t`: "\t", ":": ":", `::`: "::", `\x00`: "\x00", "|": "|",
		`"`: `"`, `\`: `\`, `\\`: `\`, `\q`: `\q`, `a\nb`: "a\nb"} {
		got, err := unescape(in)
		if err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := unescape(`\x0`); err == nil {
		t.Error(`\x0 accepted`)
	}
}

func TestConsumeFlags(t *testing.T) {
	f := consumeFlags{partition: -1}
	opts, err := f.consumerOptions("t")
	if err != nil || !opts.Follow || opts.Start != client.StartLatest || opts.Partitions != nil {
		t.Fatalf("defaults: %+v, %v", opts, err)
	}
	f = consumeFlags{partition: 2, offset: "17", exitAtEnd: true}
	opts, err = f.consumerOptions("t")
	if err != nil || opts.Follow || opts.Offsets[2] != 17 || len(opts.Partitions) != 1 || opts.Partitions[0] != 2 {
		t.Fatalf("partition 2 offset 17: %+v, %v", opts, err)
	}
	f = consumeFlags{partition: -1, clientRack: "b"}
	if opts, err = f.consumerOptions("t"); err != nil || opts.Rack != "b" {
		t.Fatalf("--client-rack: %+v, %v", opts, err)
	}
	if _, err := (&consumeFlags{partition: -1, group: "g", clientRack: "b"}).groupOptions("t"); err == nil {
		t.Error("--client-rack with --group accepted")
	}
	f = consumeFlags{partition: -1, isolationLevel: "read_committed"}
	if opts, err = f.consumerOptions("t"); err != nil || !opts.ReadCommitted {
		t.Fatalf("--isolation-level read_committed: %+v, %v", opts, err)
	}
	if g, err := (&consumeFlags{partition: -1, group: "g", isolationLevel: "read_committed"}).groupOptions("t"); err != nil || !g.ReadCommitted {
		t.Fatalf("--isolation-level read_committed with --group: %+v, %v", g, err)
	}
	f = consumeFlags{partition: -1, isolationLevel: "read_uncommitted"}
	if opts, err = f.consumerOptions("t"); err != nil || opts.ReadCommitted {
		t.Fatalf("--isolation-level read_uncommitted: %+v, %v", opts, err)
	}
	f = consumeFlags{partition: 0, offset: "earliest"}
	if opts, err = f.consumerOptions("t"); err != nil || opts.Offsets[0] != client.OffsetEarliest {
		t.Fatalf("earliest: %+v, %v", opts, err)
	}
	for _, bad := range []consumeFlags{
		{partition: -1, offset: "3"},                     // --offset without --partition
		{partition: 0, offset: "3", fromBeginning: true}, // both
		{partition: 0, offset: "-5"},
		{partition: 0, offset: "soon"},
		{partition: -1, isolationLevel: "committed"},
	} {
		if _, err := bad.consumerOptions("t"); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestProducerFlags(t *testing.T) {
	f := producerFlags{acks: "all", linger: 0, batchBytes: 1 << 20, compression: "zstd"}
	opts, err := f.options()
	if err != nil || opts.Linger != client.NoLinger || opts.Acks != client.AcksAll {
		t.Fatalf("%+v, %v: --linger 0 must mean no linger", opts, err)
	}
	for _, bad := range []producerFlags{
		{acks: "2", batchBytes: 1},
		{acks: "1", batchBytes: 1, compression: "brotli"},
		{acks: "1", batchBytes: 0},
		{acks: "1", batchBytes: 1, linger: -time.Second},
	} {
		if _, err := bad.options(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func readAllLines(t *testing.T, in string, bufSize, max int) ([]string, error) {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	var out []string
	var buf []byte
	for {
		line, err := readLine(br, buf[:0], max)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(line))
		buf = line
	}
}

// Lines longer than bufio.Scanner's 64 KiB limit, and longer than the reader's
// own buffer, come through whole.
func TestReadLineHandlesLongLinesAndLineEndings(t *testing.T) {
	long := strings.Repeat("x", 300<<10)
	in := "a\r\n\n" + long + "\nlast without newline"
	lines, err := readAllLines(t, in, 16, 1<<20) // a 16-byte buffer: every line spans reads
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "", long, "last without newline"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %d bytes %.20q, want %d bytes %.20q", i+1, len(lines[i]), lines[i], len(want[i]), want[i])
		}
	}
}

func TestReadLineRefusesLinesOverTheLimit(t *testing.T) {
	lines, err := readAllLines(t, "ok\n"+strings.Repeat("y", 101)+"\nnext\n", 16, 100)
	if err == nil || len(lines) != 1 {
		t.Fatalf("lines %q, err %v: want the first line, then an error", lines, err)
	}
	if _, err := readAllLines(t, strings.Repeat("y", 100)+"\r\n", 16, 100); err != nil {
		t.Fatalf("a line of exactly the limit: %v", err)
	}
}
