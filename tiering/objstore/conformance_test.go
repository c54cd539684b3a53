package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/strata-broker/strata/tiering/objstore"
)

// largeObjectSize is the size of the object the conformance test uploads
// in parts from the S3 store (the MinIO test lowers the multipart
// threshold below it) and writes whole in the local store.
const largeObjectSize = 12<<20 + 12345

// testStore is the contract every Store keeps. s must be empty: tests give
// each run its own directory or prefix.
func testStore(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	t.Logf("store %s", s)

	t.Run("PutGet", func(t *testing.T) {
		body := randBytes(1, 100_000)
		mustPut(t, s, "put/a.log", body)
		if got := mustGet(t, s, "put/a.log"); !bytes.Equal(got, body) {
			t.Fatalf("Get returned %d bytes, not the %d put", len(got), len(body))
		}
		// Overwrite replaces the object.
		body2 := []byte("replaced")
		mustPut(t, s, "put/a.log", body2)
		if got := mustGet(t, s, "put/a.log"); !bytes.Equal(got, body2) {
			t.Fatalf("after overwrite Get = %q, want %q", got, body2)
		}
		// An empty object is an object.
		mustPut(t, s, "put/empty", nil)
		if got := mustGet(t, s, "put/empty"); len(got) != 0 {
			t.Fatalf("empty object read back as %d bytes", len(got))
		}
		info, ok, err := s.Exists(ctx, "put/empty")
		if err != nil || !ok || info.Size != 0 || info.Key != "put/empty" {
			t.Fatalf("Exists(put/empty) = %+v, %v, %v", info, ok, err)
		}
	})

	t.Run("PutBodyKinds", func(t *testing.T) {
		body := randBytes(2, 70_000)
		// Not seekable: read in order.
		if err := s.Put(ctx, "kinds/reader", io.MultiReader(bytes.NewReader(body[:100]), bytes.NewReader(body[100:])), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		// Seekable, and read from its current offset.
		r := bytes.NewReader(body)
		if _, err := r.Seek(1000, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "kinds/seeker", r, int64(len(body)-1000)); err != nil {
			t.Fatal(err)
		}
		// A reader that returns data together with io.EOF.
		if err := s.Put(ctx, "kinds/dataeof", iotest.DataErrReader(bytes.NewReader(body)), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string][]byte{"kinds/reader": body, "kinds/seeker": body[1000:], "kinds/dataeof": body} {
			if got := mustGet(t, s, key); !bytes.Equal(got, want) {
				t.Errorf("%s: read back %d bytes, want %d equal bytes", key, len(got), len(want))
			}
		}
	})

	t.Run("PutFailureLeavesNothing", func(t *testing.T) {
		old := []byte("previous version")
		mustPut(t, s, "fail/kept", old)
		body := randBytes(3, 50_000)
		// Each case makes a fresh body, as Put consumes it.
		cases := map[string]struct {
			body func() io.Reader
			size int64
		}{
			"short reader":    {func() io.Reader { return io.MultiReader(bytes.NewReader(body)) }, int64(len(body) + 1)},
			"long reader":     {func() io.Reader { return io.MultiReader(bytes.NewReader(body)) }, int64(len(body) - 1)},
			"short seeker":    {func() io.Reader { return bytes.NewReader(body) }, int64(len(body) + 1)},
			"long seeker":     {func() io.Reader { return bytes.NewReader(body) }, int64(len(body) - 1)},
			"negative size":   {func() io.Reader { return bytes.NewReader(body) }, -1},
			"timeout reader":  {func() io.Reader { return iotest.TimeoutReader(bytes.NewReader(body)) }, int64(len(body))},
			"half reader eof": {func() io.Reader { return iotest.HalfReader(bytes.NewReader(body[:10])) }, int64(len(body))},
			"failing reader": {func() io.Reader {
				return io.MultiReader(bytes.NewReader(body[:1000]), iotest.ErrReader(errors.New("disk on fire")))
			}, int64(len(body))},
		}
		for name, c := range cases {
			for _, key := range []string{"fail/new", "fail/kept"} {
				if err := s.Put(ctx, key, c.body(), c.size); err == nil {
					t.Errorf("%s: Put(%s) succeeded", name, key)
				}
			}
		}
		if _, ok, err := s.Exists(ctx, "fail/new"); ok || err != nil {
			t.Errorf("after failed Puts Exists(fail/new) = %v, %v", ok, err)
		}
		if got := mustGet(t, s, "fail/kept"); !bytes.Equal(got, old) {
			t.Errorf("failed Put changed the previous object to %q", got)
		}
		if infos, err := s.List(ctx, "fail/"); err != nil || len(infos) != 1 {
			t.Errorf("List(fail/) = %v, %v; want only fail/kept", infos, err)
		}
	})

	t.Run("Large", func(t *testing.T) {
		body := randBytes(4, largeObjectSize)
		// Seekable (read by offset) and not (read in order).
		mustPut(t, s, "large/seekable", body)
		if err := s.Put(ctx, "large/stream", io.MultiReader(bytes.NewReader(body)), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"large/seekable", "large/stream"} {
			if got := mustGet(t, s, key); !bytes.Equal(got, body) {
				t.Errorf("%s: read back %d bytes, want the %d put", key, len(got), len(body))
			}
		}
		// A failing body in the middle of a large upload stores nothing.
		failing := io.MultiReader(bytes.NewReader(body[:7<<20]), iotest.ErrReader(errors.New("disk on fire")))
		if err := s.Put(ctx, "large/failed", failing, int64(len(body))); err == nil {
			t.Error("Put of a failing large body succeeded")
		}
		if _, ok, err := s.Exists(ctx, "large/failed"); ok || err != nil {
			t.Errorf("Exists(large/failed) = %v, %v after a failed Put", ok, err)
		}
		if err := s.Put(ctx, "large/short", io.MultiReader(bytes.NewReader(body[:len(body)-1])), int64(len(body))); err == nil {
			t.Error("Put of a short large body succeeded")
		}
		if err := s.Put(ctx, "large/long", io.MultiReader(bytes.NewReader(body)), int64(len(body)-1)); err == nil {
			t.Error("Put of a long large body succeeded")
		}
		for _, key := range []string{"large/short", "large/long"} {
			if _, ok, err := s.Exists(ctx, key); ok || err != nil {
				t.Errorf("Exists(%s) = %v, %v after a failed Put", key, ok, err)
			}
		}
		if err := s.Delete(ctx, "large/seekable", "large/stream"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("GetRange", func(t *testing.T) {
		body := randBytes(5, 10_000)
		mustPut(t, s, "range/obj", body)
		for _, r := range [][2]int64{{0, 1}, {0, 10_000}, {1234, 5678}, {9_999, 1}, {5000, 5000}} {
			rc, err := s.GetRange(ctx, "range/obj", r[0], r[1])
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", r[0], r[1], err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("GetRange(%d, %d): read: %v", r[0], r[1], err)
			}
			if !bytes.Equal(got, body[r[0]:r[0]+r[1]]) {
				t.Errorf("GetRange(%d, %d) returned %d bytes, not the object's", r[0], r[1], len(got))
			}
		}
		for _, r := range [][2]int64{{9_999, 2}, {10_000, 1}, {20_000, 10}, {-1, 10}, {0, 0}, {0, -5}, {0, 10_001}} {
			rc, err := s.GetRange(ctx, "range/obj", r[0], r[1])
			if err == nil {
				rc.Close()
				t.Errorf("GetRange(%d, %d) of a 10000-byte object succeeded", r[0], r[1])
				continue
			}
			if !errors.Is(err, objstore.ErrInvalidRange) {
				t.Errorf("GetRange(%d, %d) = %v, want ErrInvalidRange", r[0], r[1], err)
			}
		}
		if _, err := s.GetRange(ctx, "range/missing", 0, 1); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("GetRange of a missing object = %v, want ErrNotFound", err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		mustPut(t, s, "nf/dir/obj", []byte("x"))
		for _, key := range []string{"nf/missing", "nf/dir", "nf/dir/obj/below", "nf/dir/ob"} {
			if _, err := s.Get(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("Get(%s) = %v, want ErrNotFound", key, err)
			}
			if info, ok, err := s.Exists(ctx, key); ok || err != nil {
				t.Errorf("Exists(%s) = %+v, %v, %v; want false, nil", key, info, ok, err)
			}
		}
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		var want []objstore.ObjectInfo
		start := time.Now().Add(-time.Minute)
		// More than the MinIO test's page size and delete batch, keys
		// that sort differently by component and by byte (- < / < 0).
		for i := range 25 {
			key := fmt.Sprintf("list/p/%02d", i)
			switch i {
			case 3:
				key = "list/p-a"
			case 4:
				key = "list/p/x/deep/er"
			case 5:
				key = "list/p0"
			}
			body := bytes.Repeat([]byte{'x'}, i)
			mustPut(t, s, key, body)
			want = append(want, objstore.ObjectInfo{Key: key, Size: int64(i)})
		}
		slices.SortFunc(want, func(a, b objstore.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
		got, err := s.List(ctx, "list/")
		if err != nil {
			t.Fatal(err)
		}
		checkList(t, "list/", got, want, start)
		for _, prefix := range []string{"list/p/", "list/p", "list/p/x", "list/p/0", "list/p/x/deep/er", "list/p-"} {
			var sub []objstore.ObjectInfo
			for _, o := range want {
				if strings.HasPrefix(o.Key, prefix) {
					sub = append(sub, o)
				}
			}
			got, err := s.List(ctx, prefix)
			if err != nil {
				t.Fatal(err)
			}
			checkList(t, prefix, got, sub, start)
		}
		for _, prefix := range []string{"list/q", "nothing/", "list/p/x/deep/er/"} {
			if got, err := s.List(ctx, prefix); err != nil || len(got) != 0 {
				t.Errorf("List(%q) = %v, %v; want nothing", prefix, got, err)
			}
		}

		// Delete missing keys among present ones, across batches.
		var keys []string
		for _, o := range want {
			keys = append(keys, o.Key, o.Key+"-missing")
		}
		if err := s.Delete(ctx, keys...); err != nil {
			t.Fatal(err)
		}
		if got, err := s.List(ctx, "list/"); err != nil || len(got) != 0 {
			t.Errorf("after Delete List(list/) = %v, %v", got, err)
		}
		if err := s.Delete(ctx, "list/p/00", "never/was"); err != nil {
			t.Errorf("Delete of missing keys: %v", err)
		}
		if err := s.Delete(ctx); err != nil {
			t.Errorf("Delete(): %v", err)
		}
		// Deleting an object leaves its siblings.
		mustPut(t, s, "del/a/1", []byte("1"))
		mustPut(t, s, "del/a/2", []byte("2"))
		if err := s.Delete(ctx, "del/a/1"); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "del/a/2"); string(got) != "2" {
			t.Errorf("sibling of a deleted object reads %q", got)
		}
		// The emptied "directory" can hold an object again.
		if err := s.Delete(ctx, "del/a/2"); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "del/a/3", []byte("3"))
	})

	t.Run("WholeStoreList", func(t *testing.T) {
		all, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(all, func(a, b objstore.ObjectInfo) int { return strings.Compare(a.Key, b.Key) }) {
			t.Errorf("List(\"\") is not sorted")
		}
		for _, o := range all {
			if err := objstore.CheckKey(o.Key); err != nil {
				t.Errorf("List returned key %q: %v", o.Key, err)
			}
		}
		if !slices.ContainsFunc(all, func(o objstore.ObjectInfo) bool { return o.Key == "range/obj" }) {
			t.Errorf("List(\"\") misses range/obj: %v", all)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		for _, key := range []string{"", "/abs", "a/../b", "..", "../up", "a/..", "a//b", "./a", "a/./b", "dir/", `a\b`, "a\x00b", ".objstore-tmp-x", strings.Repeat("k", 1025)} {
			checkInvalid := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, objstore.ErrInvalidKey) {
					t.Errorf("%s(%q) = %v, want ErrInvalidKey", op, key, err)
				}
			}
			checkInvalid("Put", s.Put(ctx, key, strings.NewReader("x"), 1))
			_, err := s.Get(ctx, key)
			checkInvalid("Get", err)
			_, err = s.GetRange(ctx, key, 0, 1)
			checkInvalid("GetRange", err)
			_, _, err = s.Exists(ctx, key)
			checkInvalid("Exists", err)
			checkInvalid("Delete", s.Delete(ctx, "ok", key))
		}
		for _, prefix := range []string{"/abs", "../", "a/../", "a//"} {
			if _, err := s.List(ctx, prefix); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("List(%q) = %v, want ErrInvalidKey", prefix, err)
			}
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "cancel/x", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
			t.Errorf("Put with a cancelled context = %v", err)
		}
		if _, err := s.Get(cctx, "range/obj"); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a cancelled context = %v", err)
		}
		if _, err := s.List(cctx, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("List with a cancelled context = %v", err)
		}
	})
}

func checkList(t *testing.T, prefix string, got, want []objstore.ObjectInfo, after time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("List(%q) returned %d objects, want %d: %v", prefix, len(got), len(want), got)
		return
	}
	for i := range got {
		if got[i].Key != want[i].Key || got[i].Size != want[i].Size {
			t.Errorf("List(%q)[%d] = %s (%d bytes), want %s (%d bytes)", prefix, i, got[i].Key, got[i].Size, want[i].Key, want[i].Size)
		}
		if got[i].LastModified.Before(after) || got[i].LastModified.After(time.Now().Add(time.Minute)) {
			t.Errorf("List(%q)[%d].LastModified = %v", prefix, i, got[i].LastModified)
		}
	}
}

func mustPut(t *testing.T, s objstore.Store, key string, body []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func mustGet(t *testing.T, s objstore.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): read: %v", key, err)
	}
	return b
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
