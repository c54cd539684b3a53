package record

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// handBuiltMarker lays out Kafka's end-transaction marker batch field by
// field, independently of the package's encoder.
func handBuiltMarker(pid int64, epoch int16, typ int16, coordEpoch int32, ts int64) []byte {
	var rec []byte
	rec = append(rec, 0x20)                     // record length 16, zigzag varint
	rec = append(rec, 0, 0, 0)                  // attributes, timestamp delta 0, offset delta 0
	rec = append(rec, 0x08)                     // key length 4
	rec = binary.BigEndian.AppendUint16(rec, 0) // key version
	rec = binary.BigEndian.AppendUint16(rec, uint16(typ))
	rec = append(rec, 0x0c)                     // value length 6
	rec = binary.BigEndian.AppendUint16(rec, 0) // value version
	rec = binary.BigEndian.AppendUint32(rec, uint32(coordEpoch))
	rec = append(rec, 0) // no headers

	var b []byte
	b = binary.BigEndian.AppendUint64(b, 0)                   // base offset
	b = binary.BigEndian.AppendUint32(b, uint32(49+len(rec))) // batch length
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)          // partition leader epoch
	b = append(b, 2)                                          // magic
	b = binary.BigEndian.AppendUint32(b, 0)                   // crc, below
	b = binary.BigEndian.AppendUint16(b, 0x30)                // transactional | control
	b = binary.BigEndian.AppendUint32(b, 0)                   // last offset delta
	b = binary.BigEndian.AppendUint64(b, uint64(ts))          // base timestamp
	b = binary.BigEndian.AppendUint64(b, uint64(ts))          // max timestamp
	b = binary.BigEndian.AppendUint64(b, uint64(pid))         // producer id
	b = binary.BigEndian.AppendUint16(b, uint16(epoch))       // producer epoch
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)          // base sequence: none
	b = binary.BigEndian.AppendUint32(b, 1)                   // record count
	b = append(b, rec...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestBuildEndTxnMarkerMatchesKafkaLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    EndTxnMarker
		typ  int16
	}{
		{"abort", EndTxnMarker{ProducerID: 0x0102030405060708, ProducerEpoch: 7, CoordinatorEpoch: 3}, 0},
		{"commit", EndTxnMarker{ProducerID: 42, ProducerEpoch: 0x7ffe, Commit: true, CoordinatorEpoch: -1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const ts = 1_700_000_000_123
			got := BuildEndTxnMarker(tc.m, ts)
			want := handBuiltMarker(tc.m.ProducerID, tc.m.ProducerEpoch, tc.typ, tc.m.CoordinatorEpoch, ts)
			if !bytes.Equal(got, want) {
				t.Fatalf("marker bytes\n got %x\nwant %x", got, want)
			}
			h, err := Validate(got)
			if err != nil {
				t.Fatal(err)
			}
			if !h.Control() || !h.Transactional() {
				t.Fatalf("attributes %#x: want control and transactional", h.Attributes)
			}
		})
	}
}

func TestParseControlBatch(t *testing.T) {
	for _, commit := range []bool{false, true} {
		want := EndTxnMarker{ProducerID: 99, ProducerEpoch: 4, Commit: commit, CoordinatorEpoch: 12}
		typ := int16(0)
		if commit {
			typ = 1
		}
		typeGot, m, ok, err := ParseControlBatch(handBuiltMarker(99, 4, typ, 12, 5))
		if err != nil || !ok {
			t.Fatalf("commit=%v: ok %v, err %v", commit, ok, err)
		}
		if m != want || typeGot != want.Type() {
			t.Fatalf("commit=%v: got %v %+v, want %+v", commit, typeGot, m, want)
		}
	}
}

func TestParseControlBatchOtherTypes(t *testing.T) {
	// A KRaft leader-change record is a control record, not a marker.
	typ, _, ok, err := ParseControlBatch(handBuiltMarker(1, 0, 2, 0, 5))
	if err != nil || ok || typ != ControlLeaderChange {
		t.Fatalf("got type %v ok %v err %v, want leader change, not a marker", typ, ok, err)
	}
}

func TestParseControlBatchRefusesMalformed(t *testing.T) {
	data := NewBuilder(5, 16)
	data.Append(&Record{Value: []byte("x")})
	plain, err := data.Build(None)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ParseControlBatch(plain); !IsCorrupt(err) {
		t.Errorf("data batch: err %v, want corrupt", err)
	}

	// A marker whose value lost its coordinator epoch.
	short := NewBuilder(5, 16)
	short.Append(&Record{Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0}})
	b, err := short.Build(None)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(b[offAttributes:], transactionalBit|controlBit)
	if _, _, _, err := ParseControlBatch(b); !IsCorrupt(err) {
		t.Errorf("short value: err %v, want corrupt", err)
	}

	// A negative key version is corruption, as Kafka reads it.
	neg := NewBuilder(5, 16)
	neg.Append(&Record{Key: []byte{0xff, 0xff, 0, 1}, Value: make([]byte, 6)})
	b, err = neg.Build(None)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(b[offAttributes:], transactionalBit|controlBit)
	if _, _, _, err := ParseControlBatch(b); !IsCorrupt(err) {
		t.Errorf("negative key version: err %v, want corrupt", err)
	}
}

func TestBuilderSetTransactional(t *testing.T) {
	b := NewBuilder(5, 16)
	b.SetProducer(3, 1, 0)
	b.SetTransactional(true)
	b.Append(&Record{Value: []byte("x")})
	out, err := b.Build(None)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Validate(out)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Transactional() || h.Control() {
		t.Fatalf("attributes %#x: want transactional, not control", h.Attributes)
	}
	b.Reset(5, 16)
	b.Append(&Record{Value: []byte("x")})
	if out, _ = b.Build(None); binary.BigEndian.Uint16(out[offAttributes:])&transactionalBit != 0 {
		t.Fatal("Reset kept the transactional bit")
	}
}
