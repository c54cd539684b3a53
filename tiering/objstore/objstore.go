// Package objstore is the object store tiering writes sealed segments to and
// reads them back from: one small interface (Store), an S3 implementation
// (AWS S3, MinIO, R2, ...) and a local-directory implementation for `strata
// dev`, chosen by URL with Open.
//
// The contract every implementation keeps, and the conformance test checks:
//
//   - Keys are relative, slash-separated paths ("orders-3/00000000000000000042.log").
//     The store's URL prefix is prepended on the way in and stripped on the
//     way out. Empty keys, a leading or trailing "/", empty, "." or ".."
//     components and backslashes are refused with ErrInvalidKey.
//   - Put is atomic: a reader sees the previous object (or none) until the
//     new one is complete, never a partial one. A failed Put leaves the
//     previous object in place.
//   - After Put returns, Get, GetRange, List and Exists see the object
//     (read-after-write consistency, which S3 and MinIO give).
//   - A missing object is ErrNotFound (tested with errors.Is), except in
//     Exists, which answers false, and Delete, which ignores it.
//
// Every call takes a context; cancellation and deadlines are how a caller
// bounds a call when the store is unreachable. The S3 store retries
// transient failures (throttling such as SlowDown, 5xx, connection errors)
// with capped exponential backoff inside that bound.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store is an object store holding immutable objects by key.
type Store interface {
	// Put stores size bytes read from body under key, replacing any object
	// there. size must be body's exact length: a shorter or longer body is
	// an error and nothing is stored. Put is atomic. Large objects are
	// uploaded in parts by the S3 store. A body that is an io.ReadSeeker
	// (an *os.File, an *io.SectionReader) is read from its current offset
	// without being copied into memory.
	Put(ctx context.Context, key string, body io.Reader, size int64) error
	// Get returns the whole object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange returns n bytes of the object starting at off. off must be
	// at least 0, n at least 1, and the range must lie inside the object;
	// otherwise the error wraps ErrInvalidRange. The caller closes the
	// reader.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// List returns every object whose key starts with prefix (a plain
	// string prefix, not only whole path components), sorted by key. An
	// empty prefix lists the whole store.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the objects. Keys that do not exist are not an error.
	Delete(ctx context.Context, keys ...string) error
	// Exists reports whether key holds an object, and its attributes when
	// it does.
	Exists(ctx context.Context, key string) (ObjectInfo, bool, error)
	// String is the store's URL without credentials, for logs.
	String() string
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key is relative to the store's prefix, as passed to Put.
	Key          string
	Size         int64
	LastModified time.Time
}

var (
	// ErrNotFound is returned (wrapped) when an object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidKey is returned (wrapped) for a key or prefix the store
	// refuses.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrInvalidRange is returned (wrapped) by GetRange for a range that is
	// empty, negative or reaches past the end of the object.
	ErrInvalidRange = errors.New("invalid byte range")
)

// Options are the dependencies of a store. The zero value works.
type Options struct {
	// Registerer receives the store's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives what the store has to say (retries, cleanup
	// failures); nil discards it.
	Logger *slog.Logger
	// HTTPClient is the S3 store's HTTP client; nil means the AWS SDK's
	// default. The local store ignores it.
	HTTPClient *http.Client

	// Knobs for tests, so multipart uploads, list pagination, delete
	// batches and retries can be exercised at small sizes. Zero means the
	// default constant.
	multipartThreshold int64
	partSize           int64
	listPageSize       int32
	deleteBatchSize    int
	maxBackoff         time.Duration
}

// Open opens the store a URL names:
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&path_style=BOOL&ca_bundle=FILE]
//	file:///ABSOLUTE/PATH
//
// For S3, credentials and (unless given here) the region come from the AWS
// SDK's default chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE and the shared config files,
// then instance roles. endpoint selects an S3-compatible server such as
// MinIO; with it, path_style defaults to true and region to us-east-1.
// ca_bundle is a PEM file of the CA certificates that verify the store's
// TLS certificate instead of the system's (a store behind a private CA);
// it is read when the store is opened.
// Open does not contact the store, so a broker starts while the store is
// down.
//
// For file URLs the directory is created if it does not exist.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the input, which may hold credentials.
		return nil, fmt.Errorf("objstore: cannot parse object store URL: %w", errors.Unwrap(err))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var s Store
	switch u.Scheme {
	case "s3":
		s, err = openS3(ctx, u, opts)
	case "file":
		s, err = openLocal(u, opts)
	case "":
		return nil, fmt.Errorf("objstore: object store URL %q has no scheme; want s3://BUCKET/PREFIX or file:///PATH", redactURL(u))
	default:
		return nil, fmt.Errorf("objstore: object store URL %q: unsupported scheme %q; want s3 or file", redactURL(u), u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return withMetrics(s, opts.Registerer)
}

// redactURL is u for messages and logs, without anything that may be a
// credential: its user information, the values of query parameters other
// than the S3 URL's region, path_style and ca_bundle (and the endpoint's own user
// information), and its fragment. A misplaced access key, secret or token
// shows as REDACTED.
func redactURL(u *url.URL) string {
	const mask = "REDACTED"
	c := *u
	if c.User != nil {
		c.User = url.User(mask)
	}
	if c.RawQuery != "" {
		q, err := url.ParseQuery(c.RawQuery)
		if err != nil {
			c.RawQuery = mask
		} else {
			for name, vs := range q {
				for i, v := range vs {
					switch name {
					case "region", "path_style", "ca_bundle":
					case "endpoint":
						if e, err := url.Parse(v); err != nil || e.User != nil || e.RawQuery != "" || e.Fragment != "" {
							vs[i] = mask
						}
					default:
						vs[i] = mask
					}
				}
			}
			c.RawQuery = q.Encode()
		}
	}
	if c.Fragment != "" {
		c.Fragment, c.RawFragment = mask, ""
	}
	return c.String()
}

// maxKeyLen is S3's limit on a key's length in bytes, prefix included.
const maxKeyLen = 1024

// checkKey refuses keys that are empty, absolute, end in "/", have empty,
// "." or ".." components, contain a backslash or NUL (which would mean
// different things in the two stores), or use the local store's reserved
// temporary-file prefix.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidKey, len(key), maxKeyLen)
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: begins or ends with /", ErrInvalidKey, key)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w %q: contains a backslash or NUL", ErrInvalidKey, key)
	}
	for part := range strings.SplitSeq(key, "/") {
		switch {
		case part == "" || part == "." || part == "..":
			return fmt.Errorf("%w %q: empty, . or .. path component", ErrInvalidKey, key)
		case strings.HasPrefix(part, tmpPrefix):
			return fmt.Errorf("%w %q: components beginning with %q are reserved", ErrInvalidKey, key, tmpPrefix)
		}
	}
	return nil
}

// checkPrefix is checkKey for a List prefix: empty is allowed, and so is a
// trailing "/" or a partial last component.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkKey(prefix + "x"); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}
