// Package filereload keeps a value parsed from a file and parses it again
// when the file changes, without a goroutine: the caller that needs the
// value checks the file's modification time and size, at most every
// interval, and reads it again when they changed. A file that no longer
// parses keeps the previous value in use and is logged once per change, so
// material rotated by writing the file in place (TLS certificates, a JWKS)
// never takes its user down.
package filereload

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Options says how a file is watched.
type Options struct {
	// What names the file in logs ("TLS file", "JWKS file").
	What string
	// Logger receives reloads and refusals; nil logs nothing.
	Logger *slog.Logger
	// Interval is how often, at most, the file is checked for a change:
	// calls in between reuse what was loaded, so a busy user does not stat
	// the file every time. Zero or negative checks on every call.
	Interval time.Duration
	// MaxBytes bounds the file's size; a larger file is refused (on the
	// first load, an error; later, the previous value stays). Zero is no
	// bound.
	MaxBytes int64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// File is one file parsed into T, reloaded when it changes. It is safe for
// concurrent use.
type File[T any] struct {
	path  string
	parse func([]byte) (T, error)
	opts  Options

	mu      sync.Mutex
	value   T
	modTime time.Time // of the version last read, parsed or not
	size    int64
	checked time.Time
}

// Load reads and parses path. Unlike a reload, a first load that fails is
// an error: there is nothing to fall back on.
func Load[T any](path string, parse func([]byte) (T, error), opts Options) (*File[T], error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.What == "" {
		opts.What = "file"
	}
	f := &File[T]{path: path, parse: parse, opts: opts}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	data, err := f.read(st.Size())
	if err != nil {
		return nil, err
	}
	v, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.value, f.modTime, f.size, f.checked = v, st.ModTime(), st.Size(), opts.Now()
	return f, nil
}

// read reads the file, refusing it when it is over MaxBytes, whether the
// stat said so or it grew since.
func (f *File[T]) read(statSize int64) ([]byte, error) {
	limit := f.opts.MaxBytes
	if limit > 0 && statSize > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", f.path, statSize, limit)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var r io.Reader = fh
	if limit > 0 {
		r = io.LimitReader(fh, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.path, err)
	}
	if limit > 0 && int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: more than the %d bytes allowed", f.path, limit)
	}
	return data, nil
}

// Get returns the current value, reading the file again first if it has
// changed since the last check (and that was at least Interval ago).
func (f *File[T]) Get() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.opts.Now()
	if now.Sub(f.checked) < f.opts.Interval {
		return f.value
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil {
		f.opts.Logger.Warn(f.opts.What+" unreadable; keeping the loaded one", "path", f.path, "err", err)
		return f.value
	}
	if st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.value
	}
	// Remember this version even if it is bad: it is logged once, and read
	// again only when it changes again.
	f.modTime, f.size = st.ModTime(), st.Size()
	data, err := f.read(st.Size())
	if err == nil {
		var v T
		if v, err = f.parse(data); err == nil {
			f.value = v
			f.opts.Logger.Info(f.opts.What+" reloaded", "path", f.path)
			return f.value
		}
	}
	f.opts.Logger.Error(f.opts.What+" changed but cannot be used; keeping the loaded one", "path", f.path, "err", err)
	return f.value
}
