package tiering

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/strata-broker/strata/partlog"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// UploadSegment copies a sealed segment and its indexes to the store under
// fresh keys and returns its manifest entry. Nothing refers to the objects
// until a manifest naming them is written.
func UploadSegment(ctx context.Context, st Store, l Layout, p int32, seg *partlog.SealedSegment, epoch int32, now time.Time) (SegmentMeta, error) {
	logKey, idxKey, timeKey := l.SegmentKeys(p, seg.Info.BaseOffset, epoch)
	crc := crc32.New(castagnoli)
	body := io.TeeReader(io.NewSectionReader(seg.Log, 0, seg.Info.Size), crc)
	if err := st.Put(ctx, logKey, body, seg.Info.Size); err != nil {
		return SegmentMeta{}, fmt.Errorf("upload segment %d of %s-%d: %w", seg.Info.BaseOffset, l.Topic, p, err)
	}
	for key, file := range map[string]*os.File{idxKey: seg.Index, timeKey: seg.TimeIndex} {
		if err := putFile(ctx, st, key, file); err != nil {
			return SegmentMeta{}, fmt.Errorf("upload index of segment %d of %s-%d: %w", seg.Info.BaseOffset, l.Topic, p, err)
		}
	}
	var txnKey string
	if seg.TxnIndex != nil {
		txnKey = TxnIndexKey(logKey)
		if err := putFile(ctx, st, txnKey, seg.TxnIndex); err != nil {
			return SegmentMeta{}, fmt.Errorf("upload transaction index of segment %d of %s-%d: %w", seg.Info.BaseOffset, l.Topic, p, err)
		}
	}
	meta := SegmentMeta{
		BaseOffset: seg.Info.BaseOffset, NextOffset: seg.Info.NextOffset, Size: seg.Info.Size,
		MaxTimestamp: seg.Info.MaxTimestamp, LeaderEpoch: epoch,
		Key: logKey, IndexKey: idxKey, TimeIndexKey: timeKey, TxnIndexKey: txnKey, CRC32C: crc.Sum32(),
		UploadedAt: now.UTC(),
	}
	for _, e := range seg.Epochs {
		meta.Epochs = append(meta.Epochs, EpochStart{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	return meta, nil
}

// ReadSegment reads a whole remote segment and checks it against the CRC
// its manifest recorded: what replay and restore read.
func ReadSegment(ctx context.Context, st Store, seg SegmentMeta) ([]byte, error) {
	raw, err := readAll(ctx, st, seg.Key, seg.Size)
	if err != nil {
		return nil, fmt.Errorf("remote segment %d: %w", seg.BaseOffset, err)
	}
	if int64(len(raw)) != seg.Size {
		return nil, fmt.Errorf("%w: %s holds %d bytes, the manifest says %d", ErrCorrupt, seg.Key, len(raw), seg.Size)
	}
	if got := crc32.Checksum(raw, castagnoli); got != seg.CRC32C {
		return nil, fmt.Errorf("%w: %s has CRC-32C %#08x, the manifest says %#08x", ErrCorrupt, seg.Key, got, seg.CRC32C)
	}
	return raw, nil
}

// putFile uploads a whole file under key.
func putFile(ctx context.Context, st Store, key string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return st.Put(ctx, key, io.NewSectionReader(f, 0, fi.Size()), fi.Size())
}
