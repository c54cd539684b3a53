package objstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

const (
	// DefaultMultipartThreshold is the object size from which the S3 store
	// uploads in parts: below it one PutObject, retried whole; above it
	// parts that are retried one by one and sent several at a time.
	DefaultMultipartThreshold = 64 << 20
	// DefaultPartSize is the size of each part but the last. S3 allows
	// 10,000 parts of at least 5 MiB; the part size grows for objects
	// beyond 10,000 parts.
	DefaultPartSize = 16 << 20

	minPartSize = 5 << 20
	maxParts    = 10000
	// uploadConcurrency is how many parts of one object are in flight;
	// with a body that is not an io.ReaderAt, each holds a part in memory.
	uploadConcurrency = 4
	// deleteBatchSize is the most keys DeleteObjects takes.
	deleteBatchSize = 1000

	// maxAttempts and maxBackoff bound the SDK's retries of one call:
	// attempts back off exponentially with jitter from 50 ms (1 s for
	// throttling such as SlowDown), each wait at most maxBackoff. A caller
	// bounds the whole with its context.
	maxAttempts = 8
	maxBackoff  = 5 * time.Second

	// abortTimeout bounds the cleanup of a failed multipart upload, which
	// runs even when the caller's context has ended.
	abortTimeout = 30 * time.Second

	// defaultEndpointRegion is the region for a custom endpoint when none
	// is configured: MinIO's default.
	defaultEndpointRegion = "us-east-1"
)

// s3Store keeps objects in a bucket, under a key prefix.
type s3Store struct {
	client *s3.Client
	bucket string
	// prefix is "" or ends in "/".
	prefix string
	url    string
	logger *slog.Logger

	multipartThreshold int64
	partSize           int64
	listPageSize       int32
	deleteBatchSize    int
}

// bucketName is the DNS-compatible bucket naming rule S3 enforces for new
// buckets (3 to 63 lowercase letters, digits, dots and hyphens).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func openS3(ctx context.Context, u *url.URL, opts Options) (*s3Store, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("objstore: S3 URL %q: %s; want s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=BOOL&ca_bundle=FILE", redactURL(u), fmt.Sprintf(format, args...))
	}
	if u.Opaque != "" {
		return nil, bad("no bucket (write s3://, with two slashes)")
	}
	if u.User != nil {
		return nil, bad("credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Fragment != "" {
		return nil, bad("a fragment is not allowed")
	}
	bucket := u.Host
	if bucket == "" {
		return nil, bad("no bucket")
	}
	if !bucketName.MatchString(bucket) {
		return nil, bad("invalid bucket name %q", bucket)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, bad("prefix: %v", err)
		}
		prefix += "/"
	}

	q := u.Query()
	for name := range q {
		switch name {
		case "endpoint", "region", "path_style", "ca_bundle":
			if len(q[name]) != 1 {
				return nil, bad("%s given more than once", name)
			}
		default:
			return nil, bad("unknown parameter %q", name)
		}
	}
	endpoint := q.Get("endpoint")
	if endpoint != "" {
		e, err := url.Parse(endpoint)
		switch {
		case err != nil:
			return nil, bad("endpoint: %v", errors.Unwrap(err))
		case e.Scheme != "http" && e.Scheme != "https":
			return nil, bad("endpoint %q must begin with http:// or https://", redactURL(e))
		case e.Host == "":
			return nil, bad("endpoint %q has no host", redactURL(e))
		case e.User != nil:
			return nil, bad("endpoint: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		case e.RawQuery != "" || e.Fragment != "":
			return nil, bad("endpoint %q must not have a query or fragment", redactURL(e))
		}
		endpoint = strings.TrimSuffix(e.String(), "/")
	}
	pathStyle := endpoint != ""
	if q.Has("path_style") {
		v := cmp.Or(q.Get("path_style"), "true") // a bare ?path_style means true
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, bad("path_style=%q is not a boolean", v)
		}
		pathStyle = b
	}

	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = cmpOr(opts.maxBackoff, maxBackoff)
				// No client-side retry quota: it would make every call
				// fail at once, unretried, for a while after an outage
				// drained it. Callers (the uploader, the remote reader)
				// are few and bound their own work.
				o.RateLimiter = ratelimit.None
			})
		}),
		config.WithLogger(sdkLogger{opts.Logger}),
		config.WithClientLogMode(aws.LogRetries),
	}
	if r := q.Get("region"); r != "" {
		loadOpts = append(loadOpts, config.WithRegion(r))
	}
	caBundle := q.Get("ca_bundle")
	switch {
	case caBundle != "" && opts.HTTPClient != nil:
		return nil, bad("ca_bundle applies to the SDK's own HTTP client, and Options.HTTPClient replaces it: configure its TLS roots instead")
	case caBundle != "":
		// A store behind a private CA (MinIO, Ceph): the SDK's client
		// trusts this bundle instead of the system's roots.
		data, err := os.ReadFile(caBundle)
		if err != nil {
			return nil, bad("ca_bundle: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(data) {
			return nil, bad("ca_bundle %s: no PEM certificate", caBundle)
		}
		loadOpts = append(loadOpts, config.WithCustomCABundle(bytes.NewReader(data)))
	case opts.HTTPClient != nil:
		loadOpts = append(loadOpts, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		if opts.HTTPClient != nil && os.Getenv("AWS_CA_BUNDLE") != "" {
			err = fmt.Errorf("%w (AWS_CA_BUNDLE is set, but only the SDK's own HTTP client can take it: configure the TLS roots of Options.HTTPClient instead)", err)
		}
		return nil, fmt.Errorf("objstore: load AWS configuration: %w", err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = credentialsHint{cfg.Credentials}
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, bad("no region: add ?region= or set AWS_REGION")
		}
		cfg.Region = defaultEndpointRegion
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		// Ranged reads and objects uploaded in parts carry no whole-object
		// checksum to validate; that is expected, not worth a log line.
		o.DisableLogOutputChecksumValidationSkipped = true
	})

	canon := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix}
	cq := url.Values{}
	if endpoint != "" {
		cq.Set("endpoint", endpoint)
	}
	cq.Set("region", cfg.Region)
	cq.Set("path_style", strconv.FormatBool(pathStyle))
	if caBundle != "" {
		cq.Set("ca_bundle", caBundle)
	}
	canon.RawQuery = cq.Encode()

	s := &s3Store{
		client:             client,
		bucket:             bucket,
		prefix:             prefix,
		url:                canon.String(),
		logger:             opts.Logger,
		multipartThreshold: cmpOr(opts.multipartThreshold, DefaultMultipartThreshold),
		partSize:           cmpOr(opts.partSize, DefaultPartSize),
		listPageSize:       opts.listPageSize,
		deleteBatchSize:    cmpOr(opts.deleteBatchSize, deleteBatchSize),
	}
	return s, nil
}

// cmpOr is cmp.Or for the knobs: v unless it is zero or negative.
func cmpOr[T int | int32 | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (s *s3Store) String() string { return s.url }

// where names an object in errors: s3://bucket/prefix/key.
func (s *s3Store) where(key string) string {
	return "s3://" + s.bucket + "/" + s.prefix + key
}

// ErrNoCredentials matches (errors.Is) the failure of every S3 call made
// without credentials: the SDK's default chain found none.
var ErrNoCredentials = errors.New("no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")

// credentialsHint makes a failure to find credentials name the variables
// to set: the SDK's own message lists only the last source it tried ("no
// EC2 IMDS role found").
type credentialsHint struct{ aws.CredentialsProvider }

func (c credentialsHint) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := c.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return creds, fmt.Errorf("%w (%w)", ErrNoCredentials, err)
	}
	return creds, err
}

// fail wraps err from op on key, mapping S3's "no such key" to ErrNotFound
// and an unsatisfiable range to ErrInvalidRange.
func (s *s3Store) fail(op, key string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("objstore: %s %s: %w", op, s.where(key), ErrNotFound)
		case "InvalidRange":
			return fmt.Errorf("objstore: %s %s: %w (%v)", op, s.where(key), ErrInvalidRange, err)
		}
	}
	return fmt.Errorf("objstore: %s %s: %w", op, s.where(key), err)
}

func (s *s3Store) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("objstore: put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("objstore: put %s: negative size %d", s.where(key), size)
	}
	src, err := newSource(body, size)
	if err != nil {
		return fmt.Errorf("objstore: put %s: %w", s.where(key), err)
	}
	if size >= s.multipartThreshold {
		return s.putMultipart(ctx, key, src, size)
	}
	// PutObject needs a body it can rewind, to sign it over plain HTTP and
	// to send it again on a retry.
	r := src.seekable()
	if r == nil {
		buf := make([]byte, size)
		if _, err := io.ReadFull(src.r, buf); err != nil {
			return fmt.Errorf("objstore: put %s: read body: %w", s.where(key), shortBody(err, size))
		}
		if err := checkEOF(src.r, size); err != nil {
			return fmt.Errorf("objstore: put %s: %w", s.where(key), err)
		}
		r = bytes.NewReader(buf)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          r,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

func shortBody(err error, size int64) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("body is shorter than its size %d", size)
	}
	return err
}

// source is a Put body. A body that can seek is read in place (by offset,
// when it is also an io.ReaderAt); any other is read in order.
type source struct {
	r    io.Reader
	ra   io.ReaderAt // nil unless r is an io.ReaderAt and an io.Seeker
	rs   io.ReadSeeker
	base int64 // r's offset when Put was called, for ra
	size int64
}

// newSource checks, for a seekable body, that size is what remains of it.
func newSource(body io.Reader, size int64) (*source, error) {
	src := &source{r: body, size: size}
	rs, ok := body.(io.ReadSeeker)
	if !ok {
		return src, nil
	}
	cur, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return src, nil // not really seekable (a pipe as an *os.File)
	}
	end, err := rs.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("seek body: %w", err)
	}
	if _, err := rs.Seek(cur, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seek body: %w", err)
	}
	switch {
	case end-cur < size:
		return nil, fmt.Errorf("body is shorter than its size %d: %d bytes", size, end-cur)
	case end-cur > size:
		return nil, fmt.Errorf("body is longer than its size %d: %d bytes", size, end-cur)
	}
	src.rs, src.base = rs, cur
	if ra, ok := body.(io.ReaderAt); ok {
		src.ra = ra
	}
	return src, nil
}

// seekable returns the body as an io.ReadSeeker of exactly size bytes, or
// nil if it cannot seek.
func (src *source) seekable() io.ReadSeeker {
	switch {
	case src.ra != nil:
		return io.NewSectionReader(src.ra, src.base, src.size)
	case src.rs != nil:
		return src.rs
	}
	return nil
}

// putMultipart uploads the object in parts, several at a time, and
// completes the upload, or aborts it on any failure so S3 keeps no parts.
// The object appears only when the upload completes, so Put stays atomic.
func (s *s3Store) putMultipart(ctx context.Context, key string, src *source, size int64) (err error) {
	partSize := s.partSize
	if n := (size + partSize - 1) / partSize; n > maxParts {
		partSize = (size + maxParts - 1) / maxParts
		partSize = (partSize + 1<<20 - 1) &^ (1<<20 - 1) // whole MiB
	}
	fullKey := s.prefix + key
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(fullKey),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return s.fail("put", key, fmt.Errorf("create multipart upload: %w", err))
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   aws.String(s.bucket),
			Key:      aws.String(fullKey),
			UploadId: uploadID,
		}); aerr != nil {
			// The parts stay (and are billed) until a lifecycle rule
			// for incomplete uploads removes them.
			s.logger.Warn("objstore: cannot abort a failed multipart upload", "object", s.where(key), "upload_id", aws.ToString(uploadID), "err", aerr)
		}
	}()

	parts, err := s.uploadParts(ctx, key, uploadID, src, size, partSize)
	if err != nil {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(fullKey),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return s.fail("put", key, fmt.Errorf("complete multipart upload: %w", err))
	}
	return nil
}

// uploadParts sends the parts, at most uploadConcurrency at a time, and
// returns them in order. It stops at the first failure.
func (s *s3Store) uploadParts(ctx context.Context, key string, uploadID *string, src *source, size, partSize int64) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	slots := make(chan struct{}, uploadConcurrency)
	bufs := make(chan []byte, uploadConcurrency) // buffers for a body read in order
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel(err)
		}
	}
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		off := int64(i) * partSize
		length := min(partSize, size-off)
		var body io.ReadSeeker
		var buf []byte
		if src.ra != nil {
			body = io.NewSectionReader(src.ra, src.base+off, length)
		} else {
			select {
			case buf = <-bufs:
			default:
				buf = make([]byte, partSize)
			}
			if _, err := io.ReadFull(src.r, buf[:length]); err != nil {
				fail(s.fail("put", key, fmt.Errorf("read body: %w", shortBody(err, size))))
				break
			}
			body = bytes.NewReader(buf[:length])
		}
		wg.Go(func() {
			defer func() {
				if buf != nil {
					bufs <- buf
				}
				<-slots
			}()
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:            aws.String(s.bucket),
				Key:               aws.String(s.prefix + key),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				Body:              body,
				ContentLength:     aws.Int64(length),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				fail(s.fail("put", key, fmt.Errorf("upload part %d of %d: %w", i+1, n, err)))
				return
			}
			parts[i] = types.CompletedPart{
				PartNumber:    aws.Int32(int32(i + 1)),
				ETag:          out.ETag,
				ChecksumCRC32: out.ChecksumCRC32,
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, s.fail("put", key, err)
	}
	if src.ra == nil && src.rs == nil {
		if err := checkEOF(src.r, size); err != nil {
			return nil, s.fail("put", key, err)
		}
	}
	return parts, nil
}

func (s *s3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("objstore: get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	return out.Body, nil
}

func (s *s3Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("objstore: get range: %w", err)
	}
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("objstore: get range %s [%d, +%d): %w", s.where(key), off, n, ErrInvalidRange)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	}, rangedGet)
	if err != nil {
		return nil, s.fail("get range", key, err)
	}
	// S3 answers a range reaching past the end with what there is.
	if got := aws.ToInt64(out.ContentLength); got != n {
		out.Body.Close()
		return nil, fmt.Errorf("objstore: get range %s [%d, +%d): past the end of the object (%s): %w",
			s.where(key), off, n, aws.ToString(out.ContentRange), ErrInvalidRange)
	}
	return out.Body, nil
}

// rangedGet drops, for a ranged GET, the request for the object's
// checksum: S3 returns none for part of an object, so there is nothing to
// validate, and setting up the validation cost a measurable part of each
// GET's handling in the client (BenchmarkS3GetRangeRequest). Callers
// check what they read (the remote reader checks every batch's CRC).
func rangedGet(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

func (s *s3Store) Exists(ctx context.Context, key string) (ObjectInfo, bool, error) {
	if err := checkKey(key); err != nil {
		return ObjectInfo{}, false, fmt.Errorf("objstore: exists: %w", err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		err = s.fail("exists", key, err)
		if errors.Is(err, ErrNotFound) {
			return ObjectInfo{}, false, nil
		}
		return ObjectInfo{}, false, err
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		LastModified: aws.ToTime(out.LastModified),
	}, true, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore: list: %w", err)
	}
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.prefix + prefix),
	}
	if s.listPageSize > 0 {
		in.MaxKeys = aws.Int32(s.listPageSize)
	}
	var out []ObjectInfo
	for p := s3.NewListObjectsV2Paginator(s.client, in); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("objstore: list %s: %w", s.where(prefix), err)
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok {
				continue
			}
			out = append(out, ObjectInfo{Key: k, Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified)})
		}
	}
	// S3 lists in UTF-8 byte order already; an S3-compatible server
	// might not.
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *s3Store) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := checkKey(key); err != nil {
			return fmt.Errorf("objstore: delete: %w", err)
		}
	}
	for batch := range slices.Chunk(keys, s.deleteBatchSize) {
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, key := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.prefix + key)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("objstore: delete %d objects from %s (first %s): %w", len(batch), s.where(""), batch[0], err)
		}
		var errs []error
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message)))
		}
		if len(errs) > 0 {
			return fmt.Errorf("objstore: delete from %s: %d of %d objects failed: %w", s.where(""), len(errs), len(batch), errors.Join(errs...))
		}
	}
	return nil
}

// sdkLogger sends the AWS SDK's log lines (retries, warnings) to slog.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "objstore: AWS SDK: "+fmt.Sprintf(format, v...))
}
