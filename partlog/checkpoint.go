package partlog

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
)

// A checkpoint file holds one offset as text, with a CRC-32C so that a torn
// or damaged file is recognised rather than trusted:
//
//	1 <offset> <crc32c of "1 <offset>", 8 hex digits>\n
const checkpointVersion = "1"

func encodeCheckpoint(v int64) []byte {
	body := checkpointVersion + " " + strconv.FormatInt(v, 10)
	return fmt.Appendf(nil, "%s %08x\n", body, crc32.Checksum([]byte(body), castagnoli))
}

func decodeCheckpoint(b []byte) (int64, error) {
	line, ok := bytes.CutSuffix(b, []byte("\n"))
	fields := bytes.Fields(line)
	if !ok || len(fields) != 3 || string(fields[0]) != checkpointVersion {
		return 0, fmt.Errorf("malformed checkpoint %q", b)
	}
	body := line[:len(fields[0])+1+len(fields[1])]
	sum, err := strconv.ParseUint(string(fields[2]), 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum(body, castagnoli) {
		return 0, fmt.Errorf("checkpoint checksum mismatch in %q", b)
	}
	v, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad offset in checkpoint %q", b)
	}
	return v, nil
}

func readCheckpoint(dir, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	v, err := decodeCheckpoint(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// writeCheckpoint publishes a checkpoint atomically and durably.
func writeCheckpoint(dir, name string, v int64) error {
	if err := writeFileAtomic(dir, name, encodeCheckpoint(v)); err != nil {
		return err
	}
	return syncDir(dir)
}

// PublishFile makes data durable as dir/name: write a temporary file, fsync,
// rename, fsync dir. Readers see the old file or the new one, never a torn one.
// It is for small files kept beside a log, such as the broker's partition
// metadata.
func PublishFile(dir, name string, data []byte) error {
	if err := writeFileAtomic(dir, name, data); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeFileAtomic publishes data as dir/name through a temporary file:
// write, fsync, rename. The caller fsyncs the directory to make the rename
// durable.
func writeFileAtomic(dir, name string, data []byte) error {
	return writeFileRenamed(dir, name, data, true)
}

// writeFileRenamed is writeFileAtomic, with the fsync of the file left to a
// SyncBatch when sync is false.
func writeFileRenamed(dir, name string, data []byte, sync bool) error {
	path := filepath.Join(dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("log: write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("log: write %s: %w", name, err)
	}
	return nil
}

// syncDir fsyncs a directory, making creations, renames and removals in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("log: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("log: sync dir %s: %w", dir, err)
	}
	return nil
}
