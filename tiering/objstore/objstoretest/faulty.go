// Package objstoretest has what tests of the object store's users share: a
// wrapper that injects failures into a real store and records what was done
// to it.
package objstoretest

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/strata-broker/strata/tiering/objstore"
)

// ErrDown is the error of an injected failure.
var ErrDown = errors.New("object store down (injected by the test)")

// Faulty is a Store whose calls can be made to fail, wrapping a real one
// (usually the local-directory store), so that the code under test meets a
// store that is down without any of it being faked.
type Faulty struct {
	objstore.Store

	// FailDeletes makes every Delete fail with ErrDown while set.
	FailDeletes atomic.Bool
	// FailReads makes every Get, GetRange, List and Exists fail with
	// ErrDown while set.
	FailReads atomic.Bool
	// FailGet, when set, makes a Get or GetRange of a key it matches fail
	// with ErrDown.
	FailGet atomic.Pointer[func(key string) bool]
	// FailPut, when set, makes a Put of a key it matches fail with ErrDown.
	FailPut atomic.Pointer[func(key string) bool]
	// OnPut, when set, is called after each Put that succeeded.
	OnPut atomic.Pointer[func(key string)]

	// DeleteCalls and ListCalls count calls, failed ones included.
	DeleteCalls atomic.Int64
	ListCalls   atomic.Int64

	mu      sync.Mutex
	deleted []string
}

// NewFaulty wraps s; nothing fails until the test says so.
func NewFaulty(s objstore.Store) *Faulty { return &Faulty{Store: s} }

// Put fails for the keys FailPut matches, else writes through.
func (f *Faulty) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	if fail := f.FailPut.Load(); fail != nil && (*fail)(key) {
		return ErrDown
	}
	if err := f.Store.Put(ctx, key, body, size); err != nil {
		return err
	}
	if fn := f.OnPut.Load(); fn != nil {
		(*fn)(key)
	}
	return nil
}

// Delete fails while FailDeletes is set, else deletes through and records
// the keys.
func (f *Faulty) Delete(ctx context.Context, keys ...string) error {
	f.DeleteCalls.Add(1)
	if f.FailDeletes.Load() {
		return ErrDown
	}
	if err := f.Store.Delete(ctx, keys...); err != nil {
		return err
	}
	f.mu.Lock()
	f.deleted = append(f.deleted, keys...)
	f.mu.Unlock()
	return nil
}

// List counts the call and lists through, unless FailReads is set.
func (f *Faulty) List(ctx context.Context, prefix string) ([]objstore.ObjectInfo, error) {
	f.ListCalls.Add(1)
	if f.FailReads.Load() {
		return nil, ErrDown
	}
	return f.Store.List(ctx, prefix)
}

// Get fails while FailReads is set or for the keys FailGet matches, else
// reads through.
func (f *Faulty) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if f.FailReads.Load() || f.failGet(key) {
		return nil, ErrDown
	}
	return f.Store.Get(ctx, key)
}

// GetRange fails as Get does, else reads through.
func (f *Faulty) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if f.FailReads.Load() || f.failGet(key) {
		return nil, ErrDown
	}
	return f.Store.GetRange(ctx, key, off, n)
}

func (f *Faulty) failGet(key string) bool {
	fail := f.FailGet.Load()
	return fail != nil && (*fail)(key)
}

// Exists fails while FailReads is set, else asks through.
func (f *Faulty) Exists(ctx context.Context, key string) (objstore.ObjectInfo, bool, error) {
	if f.FailReads.Load() {
		return objstore.ObjectInfo{}, false, ErrDown
	}
	return f.Store.Exists(ctx, key)
}

// Deleted returns the keys deleted so far, in order.
func (f *Faulty) Deleted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deleted)
}
