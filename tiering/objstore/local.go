package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// tmpPrefix begins the name of a file the local store is still writing. Keys
// may not use it, and List skips such files, so a Put that crashed leaves a
// file nobody sees (and that a later Delete of its directory's objects does
// not prune; remove stale ones by hand).
const tmpPrefix = ".objstore-tmp-"

// localStore keeps objects as files under a directory, one file per key, the
// key's slashes becoming subdirectories. It is for development and tests
// (`strata dev`): durable (fsync on every Put) but on one disk.
//
// Unlike S3, a key cannot be both an object and a "directory" of others:
// Put("a") fails while "a/b" exists, and the other way round.
type localStore struct {
	root   string
	logger *slog.Logger
}

func openLocal(u *url.URL, opts Options) (*localStore, error) {
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") {
		return nil, fmt.Errorf("objstore: file URL %q must name an absolute path, as in file:///var/lib/strata/objects", redactURL(u))
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("objstore: file URL %q: user, query and fragment are not supported", redactURL(u))
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("objstore: file URL %q must name an absolute path, as in file:///var/lib/strata/objects", redactURL(u))
	}
	root := filepath.Clean(u.Path)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("objstore: create local store directory: %w", err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("objstore: local store directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("objstore: local store %s is not a directory", root)
	}
	return &localStore{root: root, logger: opts.Logger}, nil
}

func (l *localStore) String() string {
	return (&url.URL{Scheme: "file", Path: l.root}).String()
}

func (l *localStore) path(key string) string {
	return filepath.Join(l.root, filepath.FromSlash(key))
}

// Put writes a temporary file beside the object, fsyncs it, renames it into
// place and fsyncs the directory, so the object is either the old one or
// the whole new one, after a crash too.
func (l *localStore) Put(ctx context.Context, key string, body io.Reader, size int64) (err error) {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("objstore: put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("objstore: put %s: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	dst := l.path(key)
	dir := filepath.Dir(dst)
	f, err := l.createTemp(dir)
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				l.logger.Warn("objstore: cannot remove temporary file", "path", tmp, "err", rmErr)
			}
		}
	}()
	if err := copyExactly(ctx, f, body, size); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("objstore: put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("objstore: put %s: sync directory: %w", key, err)
	}
	return nil
}

// createTemp creates dir (and its parents under the root) and a temporary
// file in it. A concurrent Delete may prune dir between the two steps, so a
// vanished directory is created again, a few times.
func (l *localStore) createTemp(dir string) (*os.File, error) {
	for attempt := 1; ; attempt++ {
		if err := l.mkdirAll(dir); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(dir, tmpPrefix+"*")
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			return f, err
		}
	}
}

// mkdirAll creates dir and any missing parents below the root, fsyncing the
// parent of each directory it creates so the new entries survive a crash.
func (l *localStore) mkdirAll(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is a file, not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if dir == l.root || !strings.HasPrefix(dir, l.root) {
		return fmt.Errorf("local store directory %s is gone: %w", l.root, err)
	}
	parent := filepath.Dir(dir)
	if err := l.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// copyExactly copies size bytes from src to dst and fails if src holds
// fewer or more.
func copyExactly(ctx context.Context, dst io.Writer, src io.Reader, size int64) error {
	n, err := io.CopyN(dst, ctxReader{ctx, src}, size)
	if err == io.EOF {
		return fmt.Errorf("body ended after %d bytes, want %d", n, size)
	}
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return checkEOF(src, size)
}

// checkEOF fails unless r, having given size bytes, is at its end.
func checkEOF(r io.Reader, size int64) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("body is longer than its size %d", size)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
	}
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *localStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := l.open(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (l *localStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("objstore: get range %s [%d, +%d): %w", key, off, n, ErrInvalidRange)
	}
	f, size, err := l.open(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	if off > size-n {
		f.Close()
		return nil, fmt.Errorf("objstore: get range %s [%d, +%d): past the end of the object (%d bytes): %w", key, off, n, size, ErrInvalidRange)
	}
	return sectionReadCloser{io.NewSectionReader(f, off, n), f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
}

// open opens key's file and returns its size.
func (l *localStore) open(ctx context.Context, op, key string) (*os.File, int64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, fmt.Errorf("objstore: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	f, err := os.Open(l.path(key))
	if err != nil {
		if isMissing(err) {
			return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, key, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, key, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("objstore: %s %s: %w", op, key, ErrNotFound)
	}
	return f, st.Size(), nil
}

// isMissing: the path does not exist, or a parent of it is a file.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (l *localStore) Exists(ctx context.Context, key string) (ObjectInfo, bool, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, false, fmt.Errorf("objstore: exists: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, false, fmt.Errorf("objstore: exists %s: %w", key, err)
	}
	st, err := os.Stat(l.path(key))
	if err != nil {
		if isMissing(err) {
			return ObjectInfo{}, false, nil
		}
		return ObjectInfo{}, false, fmt.Errorf("objstore: exists %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		return ObjectInfo{}, false, nil
	}
	return ObjectInfo{Key: key, Size: st.Size(), LastModified: st.ModTime()}, true, nil
}

func (l *localStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore: list: %w", err)
	}
	// Walk only the deepest directory every match lies under.
	start := l.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = l.path(prefix[:i])
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isMissing(err) {
				return nil // gone, or start is not there: nothing to list
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == l.root {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Descend only where keys can still match the prefix.
			if dirKey := key + "/"; !strings.HasPrefix(dirKey, prefix) && !strings.HasPrefix(prefix, dirKey) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if isMissing(err) {
				return nil // deleted while we walked
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size(), LastModified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete removes each key's file and then the directories that it leaves
// empty, up to (not including) the root. Deletions are not fsynced: an
// object that comes back after a crash is garbage its owner deletes again.
func (l *localStore) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := checkKey(key); err != nil {
			return fmt.Errorf("objstore: delete: %w", err)
		}
	}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("objstore: delete %s: %w", key, err)
		}
		p := l.path(key)
		st, err := os.Lstat(p)
		if err != nil {
			if isMissing(err) {
				continue
			}
			return fmt.Errorf("objstore: delete %s: %w", key, err)
		}
		if st.IsDir() {
			continue // a "directory" of other keys, not an object
		}
		if err := os.Remove(p); err != nil && !isMissing(err) {
			return fmt.Errorf("objstore: delete %s: %w", key, err)
		}
		l.prune(filepath.Dir(p))
	}
	return nil
}

// prune removes dir and its parents while they are empty, stopping below
// the root. Failure (a directory not empty, or pruned concurrently) just
// ends it.
func (l *localStore) prune(dir string) {
	for dir != l.root && strings.HasPrefix(dir, l.root+string(filepath.Separator)) {
		if err := os.Remove(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
