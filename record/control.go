package record

import (
	"encoding/binary"
	"fmt"
)

// ControlType is the type a control record's key names (Kafka's
// ControlRecordType). Only the two end-transaction markers are written by
// Strata; the others are KRaft's and are recognised so that a log holding
// one is not called corrupt.
type ControlType int16

// Control record types, with Kafka's numbers.
const (
	ControlAbort          ControlType = 0
	ControlCommit         ControlType = 1
	ControlLeaderChange   ControlType = 2
	ControlSnapshotHeader ControlType = 3
	ControlSnapshotFooter ControlType = 4
	ControlKRaftVersion   ControlType = 5
	ControlKRaftVoters    ControlType = 6
)

func (t ControlType) String() string {
	switch t {
	case ControlAbort:
		return "abort"
	case ControlCommit:
		return "commit"
	default:
		return fmt.Sprintf("control type %d", int16(t))
	}
}

// The key of a control record is version int16 + type int16; the value of
// an end-transaction marker is version int16 + coordinator epoch int32.
// Kafka writes version 0 of both and reads a higher version as version 0
// (later versions only add fields), so this package does the same.
const (
	controlKeySize  = 4
	endTxnValueSize = 6
)

// EndTxnMarker is the content of a transaction's commit or abort marker:
// the control batch a partition leader appends, at the coordinator's
// request, to end a producer's transaction in that partition.
type EndTxnMarker struct {
	ProducerID    int64
	ProducerEpoch int16
	// Commit is true for a commit marker, false for an abort marker.
	Commit bool
	// CoordinatorEpoch is the epoch of the transaction coordinator that
	// wrote the marker; a partition refuses a marker of an older
	// coordinator epoch than the last it took for that producer.
	CoordinatorEpoch int32
}

// Type is the marker's control record type.
func (m EndTxnMarker) Type() ControlType {
	if m.Commit {
		return ControlCommit
	}
	return ControlAbort
}

// BuildEndTxnMarker encodes m as Kafka does: a v2 batch, uncompressed, with
// the transactional and control attribute bits, m's producer id and epoch,
// no sequence (-1) and a single record at offset delta 0 whose key is the
// control key and whose value the marker. timestamp (ms) is the record's and
// the batch's. The base offset is 0 and the partition leader epoch -1 until
// the log stamps them.
func BuildEndTxnMarker(m EndTxnMarker, timestamp int64) []byte {
	key := make([]byte, controlKeySize)
	binary.BigEndian.PutUint16(key[2:], uint16(m.Type())) // version 0
	value := make([]byte, endTxnValueSize)
	binary.BigEndian.PutUint32(value[2:], uint32(m.CoordinatorEpoch)) // version 0
	b := NewBuilder(timestamp, 32)
	b.SetProducer(m.ProducerID, m.ProducerEpoch, -1)
	b.Append(&Record{Timestamp: timestamp, Key: key, Value: value})
	out, _ := b.Build(None) // one record, uncompressed: cannot fail
	attrs := binary.BigEndian.Uint16(out[offAttributes:]) | transactionalBit | controlBit
	binary.BigEndian.PutUint16(out[offAttributes:], attrs)
	binary.BigEndian.PutUint32(out[offCRC:], Checksum(out))
	return out
}

// ControlRecordType reads the type of a control record from its key.
func ControlRecordType(key []byte) (ControlType, error) {
	if len(key) < controlKeySize {
		return 0, corrupt("control record key of %d bytes, want at least %d", len(key), controlKeySize)
	}
	if v := int16(binary.BigEndian.Uint16(key)); v < 0 {
		return 0, corrupt("control record key version %d", v)
	}
	return ControlType(int16(binary.BigEndian.Uint16(key[2:]))), nil
}

// ParseControlBatch reads a control batch (one whose header has the control
// bit): its type, and, when it is an end-transaction marker (ok), the
// marker. A control batch holds one record; any other count, or a key or
// marker value too short, is a *CorruptError. The CRC is not checked
// (Validate does that).
func ParseControlBatch(batch []byte) (t ControlType, m EndTxnMarker, ok bool, err error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return 0, m, false, err
	}
	if !h.Control() {
		return 0, m, false, corrupt("batch at offset %d is not a control batch", h.BaseOffset)
	}
	if h.RecordCount != 1 {
		return 0, m, false, corrupt("control batch at offset %d has %d records, want 1", h.BaseOffset, h.RecordCount)
	}
	var key, value []byte
	if err := ForEach(batch, func(r *Record) error {
		key, value = r.Key, r.Value
		return nil
	}); err != nil {
		return 0, m, false, err
	}
	if t, err = ControlRecordType(key); err != nil {
		return 0, m, false, err
	}
	if t != ControlAbort && t != ControlCommit {
		return t, m, false, nil
	}
	if len(value) < endTxnValueSize {
		return t, m, false, corrupt("end transaction marker value of %d bytes, want at least %d", len(value), endTxnValueSize)
	}
	if v := int16(binary.BigEndian.Uint16(value)); v < 0 {
		return t, m, false, corrupt("end transaction marker version %d", v)
	}
	m = EndTxnMarker{
		ProducerID:       h.ProducerID,
		ProducerEpoch:    h.ProducerEpoch,
		Commit:           t == ControlCommit,
		CoordinatorEpoch: int32(binary.BigEndian.Uint32(value[2:])),
	}
	return t, m, true, nil
}
