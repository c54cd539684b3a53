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
		st2, err := file.Stat()
		if err != nil {
			return SegmentMeta{}, fmt.Errorf("upload index of segment %d of %s-%d: %w", seg.Info.BaseOffset, l.Topic, p, err)
		}
		if err := st.Put(ctx, key, io.NewSectionReader(file, 0, st2.Size()), st2.Size()); err != nil {
			return SegmentMeta{}, fmt.Errorf("upload index of segment %d of %s-%d: %w", seg.Info.BaseOffset, l.Topic, p, err)
		}
	}
	meta := SegmentMeta{
		BaseOffset: seg.Info.BaseOffset, NextOffset: seg.Info.NextOffset, Size: seg.Info.Size,
		MaxTimestamp: seg.Info.MaxTimestamp, LeaderEpoch: epoch,
		Key: logKey, IndexKey: idxKey, TimeIndexKey: timeKey, CRC32C: crc.Sum32(),
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
