package partlog

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// FileCache bounds the open files of sealed segments. Every log of a broker
// shares one, so that the descriptors a broker holds do not grow with the
// number of segments it keeps: a sealed segment's .log file is opened when
// it is read and stays open while it is among the most recently used,
// closed when it has not been used for longest and the cache is over its
// bound. (Index entries are held in memory; index files are only opened
// to be written or loaded.)
//
// A file is closed only when no reader holds it: readers take a reference
// for as long as they read, so the cache can be over its bound for a moment
// while many are in use. Active segments (one per log, appended to) are
// pinned open and not counted.
// A segment deleted or replaced (by retention, truncation or compaction) is
// never opened again by path, so a reader can never see the file of a
// replacement under an old segment's name.
type FileCache struct {
	max int // <= 0: unbounded

	// mu guards the cache's lists and every managed segment's file state
	// (f, refs, pinned, gone, idle). It is taken after every lock of the
	// logs and nothing is taken while it is held.
	mu   sync.Mutex
	idle list.List // of *segment: open, unpinned, no reader; most recent first
	open int       // open unpinned files, idle or in use

	opens, evictions atomic.Uint64
}

// NewFileCache returns a cache that keeps at most maxOpen sealed-segment
// files open; maxOpen <= 0 means no bound.
func NewFileCache(maxOpen int) *FileCache {
	return &FileCache{max: maxOpen}
}

// FileCacheStats describes a FileCache.
type FileCacheStats struct {
	Open      int    // sealed-segment files open now
	Max       int    // the bound (0: none)
	Opens     uint64 // files opened since the cache was made
	Evictions uint64 // files closed to stay within the bound
}

// Max is the most sealed-segment files the cache keeps open (<= 0:
// unbounded).
func (c *FileCache) Max() int { return c.max }

// Stats reports what the cache holds and has done.
func (c *FileCache) Stats() FileCacheStats {
	c.mu.Lock()
	open := c.open
	c.mu.Unlock()
	return FileCacheStats{Open: open, Max: max(c.max, 0), Opens: c.opens.Load(), Evictions: c.evictions.Load()}
}

// errSegmentGone: the segment was deleted or replaced; its file is not
// opened again.
var errSegmentGone = errors.New("segment was removed")

// openSegmentFile opens a segment's .log file for reading and writing: a
// sealed segment may become the active one again when the log is
// truncated into it.
func openSegmentFile(s *segment) (*os.File, error) {
	return os.OpenFile(s.path(logSuffix), os.O_RDWR, 0)
}

// acquire returns s's file, opening it if need be, and holds it open until
// release. The caller must hold the log's segMu (shared), or own s.
func (s *segment) acquire() (*os.File, error) {
	c := s.files
	c.mu.Lock()
	if s.gone {
		c.mu.Unlock()
		return nil, fmt.Errorf("log: open %s: %w", s.name(), errSegmentGone)
	}
	if s.f != nil {
		s.refs++
		if s.idle != nil {
			c.idle.Remove(s.idle)
			s.idle = nil
		}
		c.mu.Unlock()
		return s.f, nil
	}
	c.mu.Unlock()

	// Opened outside the lock: other logs' readers need not wait for it.
	f, err := openSegmentFile(s)
	if err != nil {
		return nil, fmt.Errorf("log: open %s: %w", s.name(), err)
	}
	c.opens.Add(1)
	c.mu.Lock()
	switch {
	case s.gone:
		c.mu.Unlock()
		f.Close()
		return nil, fmt.Errorf("log: open %s: %w", s.name(), errSegmentGone)
	case s.f != nil:
		// Another reader opened it meanwhile: use that one.
		s.refs++
		if s.idle != nil {
			c.idle.Remove(s.idle)
			s.idle = nil
		}
		c.mu.Unlock()
		f.Close()
		return s.f, nil
	}
	s.f = f
	s.refs++
	if !s.pinned {
		c.open++
	}
	victims := c.evictLocked()
	c.mu.Unlock()
	closeAll(victims)
	return f, nil
}

// release gives back a file taken by acquire.
func (s *segment) release() {
	c := s.files
	c.mu.Lock()
	s.refs--
	var victims []*os.File
	switch {
	case s.refs > 0 || s.f == nil:
	case s.gone:
		// Removed while read: the last reader closes it.
		victims = append(victims, s.f)
		s.f = nil
		if !s.pinned {
			c.open--
		}
	case !s.pinned:
		s.idle = c.idle.PushFront(s)
		victims = c.evictLocked()
	}
	c.mu.Unlock()
	closeAll(victims)
}

// pin keeps s's file open, outside the bound, until unpin: it is the
// active segment. The owner (the writer, under Log.mu) may use s.f
// directly while it is pinned.
func (s *segment) pin() error {
	if _, err := s.acquire(); err != nil {
		return err
	}
	c := s.files
	c.mu.Lock()
	if !s.pinned {
		s.pinned = true
		c.open--
	}
	s.refs-- // the pin holds it open now
	c.mu.Unlock()
	return nil
}

// unpin hands s's file to the cache: it may be closed once unused.
func (s *segment) unpin() {
	c := s.files
	c.mu.Lock()
	var victims []*os.File
	if s.pinned && !s.gone {
		s.pinned = false
		if s.f != nil {
			c.open++
			if s.refs == 0 {
				s.idle = c.idle.PushFront(s)
			}
			victims = c.evictLocked()
		}
	}
	c.mu.Unlock()
	closeAll(victims)
}

// adopt makes c manage s, whose file is open (a segment written outside
// the log and swapped into it), as a sealed, durable segment.
func (c *FileCache) adopt(s *segment) {
	c.mu.Lock()
	s.files = c
	s.pinned = false
	var victims []*os.File
	if s.f != nil {
		c.open++
		s.idle = c.idle.PushFront(s)
		victims = c.evictLocked()
	}
	c.mu.Unlock()
	closeAll(victims)
}

// closeFile closes s's file for good: the segment is being deleted or
// replaced, or its log closed. A reader still holding the file keeps it
// until it releases it.
func (s *segment) closeFile() error {
	c := s.files
	c.mu.Lock()
	if s.gone {
		c.mu.Unlock()
		return nil
	}
	s.gone = true
	if s.idle != nil {
		c.idle.Remove(s.idle)
		s.idle = nil
	}
	f := s.f
	if f == nil || s.refs > 0 {
		c.mu.Unlock()
		return nil
	}
	s.f = nil
	if !s.pinned {
		c.open--
	}
	c.mu.Unlock()
	return f.Close()
}

// evictLocked takes idle files off the least recently used end until the
// cache is within its bound, and returns them for the caller to close once
// it has released mu.
func (c *FileCache) evictLocked() []*os.File {
	if c.max <= 0 {
		return nil
	}
	var victims []*os.File
	for c.open > c.max {
		e := c.idle.Back()
		if e == nil {
			break // every open file is in use
		}
		s := c.idle.Remove(e).(*segment)
		s.idle = nil
		victims = append(victims, s.f)
		s.f = nil
		c.open--
	}
	c.evictions.Add(uint64(len(victims)))
	return victims
}

func closeAll(files []*os.File) {
	for _, f := range files {
		// Read-only use since they were last synced: a close error loses
		// nothing.
		_ = f.Close()
	}
}
