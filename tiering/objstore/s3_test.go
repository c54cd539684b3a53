package objstore_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering/objstore"
)

// s3TestEnv points the AWS SDK's default chain at the given credentials and
// away from the user's AWS configuration and the instance metadata service.
func s3TestEnv(t testing.TB, accessKey, secretKey string) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// The SDK cannot add a CA bundle to a client it did not build.
	t.Setenv("AWS_CA_BUNDLE", "")
}

// testHTTPClient is an HTTP client whose idle connections close with the
// test.
func testHTTPClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestS3MinIO runs the conformance test against a real MinIO, with small
// multipart, list-page and delete-batch sizes so every path is taken
// quickly, and checks with minio-go, as an independent client, that what
// the store wrote is in the bucket byte for byte.
func TestS3MinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	m := testenv.NewTestMinIO(t, testenv.MinIOOptions{})
	env := m.S3()
	s3TestEnv(t, env.AccessKey, env.SecretKey)
	const prefix = "cluster-a/tiered"
	rawURL := fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s", env.Bucket, prefix, env.Endpoint, env.Region)
	opts := objstore.Options{HTTPClient: testHTTPClient(t)}.WithTestKnobs(objstore.TestKnobs{
		MultipartThreshold: 8 << 20,
		PartSize:           objstore.MinPartSize,
		ListPageSize:       7,
		DeleteBatchSize:    10,
	})
	s, err := objstore.Open(t.Context(), rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	mc := minioClient(t, env)
	ctx := t.Context()

	t.Run("Conformance", func(t *testing.T) {
		testStore(t, s)
		// Failed multipart uploads were aborted, not left in the bucket.
		for u := range mc.ListIncompleteUploads(ctx, env.Bucket, prefix+"/", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			t.Errorf("incomplete multipart upload left behind: %s (%s)", u.Key, u.UploadID)
		}
	})

	t.Run("IndependentReader", func(t *testing.T) {
		large := randBytes(10, largeObjectSize)
		small := randBytes(11, 1000)
		// The large object goes up in 3 parts, read in order from a
		// stream and by offset from a seekable body.
		if err := s.Put(ctx, "indep/stream", io.MultiReader(bytes.NewReader(large)), int64(len(large))); err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "indep/seekable", large)
		mustPut(t, s, "indep/small", small)
		for key, want := range map[string][]byte{"indep/stream": large, "indep/seekable": large, "indep/small": small} {
			full := prefix + "/" + key
			st, err := mc.StatObject(ctx, env.Bucket, full, minio.StatObjectOptions{})
			if err != nil {
				t.Fatalf("minio-go: stat %s: %v", full, err)
			}
			if st.Size != int64(len(want)) {
				t.Errorf("minio-go: %s is %d bytes, want %d", full, st.Size, len(want))
			}
			// A multipart object's ETag ends in -<parts>.
			if wantSuffix := len(want) == len(large); strings.HasSuffix(st.ETag, "-3") != wantSuffix {
				t.Errorf("minio-go: %s has ETag %q; multipart in 3 parts: %v", full, st.ETag, wantSuffix)
			}
			obj, err := mc.GetObject(ctx, env.Bucket, full, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				t.Fatalf("minio-go: read %s: %v", full, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("minio-go: %s holds %d bytes that differ from the %d put", full, len(got), len(want))
			}
		}
		// Ranged reads of the multipart object across a part boundary.
		rc, err := s.GetRange(ctx, "indep/stream", objstore.MinPartSize-100, 200)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, large[objstore.MinPartSize-100:objstore.MinPartSize+100]) {
			t.Errorf("GetRange across a part boundary: %d bytes, %v", len(got), err)
		}

		// The bucket lists what List lists, under the URL's prefix.
		var theirs []string
		for o := range mc.ListObjects(ctx, env.Bucket, minio.ListObjectsOptions{Prefix: prefix + "/indep/", Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			theirs = append(theirs, strings.TrimPrefix(o.Key, prefix+"/"))
		}
		infos, err := s.List(ctx, "indep/")
		if err != nil {
			t.Fatal(err)
		}
		var ours []string
		for _, o := range infos {
			ours = append(ours, o.Key)
		}
		if !slices.Equal(ours, theirs) || len(ours) != 3 {
			t.Errorf("List = %v; minio-go lists %v", ours, theirs)
		}

		// What minio-go writes, the store reads.
		if _, err := mc.PutObject(ctx, env.Bucket, prefix+"/indep/theirs", bytes.NewReader(small), int64(len(small)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "indep/theirs"); !bytes.Equal(got, small) {
			t.Errorf("object written by minio-go reads back as %d different bytes", len(got))
		}

		if err := s.Delete(ctx, "indep/stream", "indep/seekable", "indep/small", "indep/theirs"); err != nil {
			t.Fatal(err)
		}
		for o := range mc.ListObjects(ctx, env.Bucket, minio.ListObjectsOptions{Prefix: prefix + "/indep/", Recursive: true}) {
			t.Errorf("minio-go: %s (%v) is still there after Delete", o.Key, o.Err)
		}
	})

	t.Run("Outage", func(t *testing.T) {
		mustPut(t, s, "outage/before", []byte("before"))
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
		// Calls fail by the caller's deadline instead of hanging.
		for name, call := range map[string]func(context.Context) error{
			"put": func(ctx context.Context) error {
				return s.Put(ctx, "outage/during", strings.NewReader("x"), 1)
			},
			"get": func(ctx context.Context) error {
				_, err := s.Get(ctx, "outage/before")
				return err
			},
			"list": func(ctx context.Context) error {
				_, err := s.List(ctx, "outage/")
				return err
			},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			start := time.Now()
			err := call(ctx)
			cancel()
			took := time.Since(start)
			t.Logf("%s with MinIO down: %v after %v", name, err, took.Round(time.Millisecond))
			if err == nil {
				t.Fatalf("%s succeeded with MinIO stopped", name)
			}
			if took > 3*time.Second {
				t.Errorf("%s took %v to fail with a 1s deadline", name, took)
			}
			if errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("%s with MinIO down reports not found: %v", name, err)
			}
			if !strings.Contains(err.Error(), "s3://"+env.Bucket+"/"+prefix+"/outage/") {
				t.Errorf("%s error does not name the object: %v", name, err)
			}
		}
		// Without a deadline the retries end by themselves.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := s.Exists(ctx, "outage/before")
		t.Logf("exists with MinIO down and no deadline: %v after %v", err, time.Since(start).Round(time.Millisecond))
		if err == nil || ctx.Err() != nil {
			t.Fatalf("Exists with MinIO down: %v (context: %v)", err, ctx.Err())
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error does not say why: %v", err)
		}

		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "outage/before"); string(got) != "before" {
			t.Errorf("after restart outage/before = %q", got)
		}
		mustPut(t, s, "outage/after", []byte("after"))
		if err := s.Delete(ctx, "outage/before", "outage/after"); err != nil {
			t.Fatal(err)
		}
	})
}

func minioClient(t *testing.T, env testenv.S3Env) *minio.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	mc, err := minio.New(strings.TrimPrefix(env.Endpoint, "http://"), &minio.Options{
		Creds:     credentials.NewStaticV4(env.AccessKey, env.SecretKey, ""),
		Region:    env.Region,
		Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// throttlingServer is an S3 endpoint that answers the first fail requests
// with 503 SlowDown (or the given status and code) and then serves one
// object from memory.
type throttlingServer struct {
	fail   int
	status int
	code   string

	mu       sync.Mutex
	requests []string // method and length of the body received
	object   []byte
}

func (ts *throttlingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests = append(ts.requests, fmt.Sprintf("%s %s", r.Method, r.Header.Get("X-Amz-Decoded-Content-Length")))
	if len(ts.requests) <= ts.fail {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(cmp.Or(ts.status, http.StatusServiceUnavailable))
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>Please reduce your request rate.</Message><RequestId>%d</RequestId></Error>`,
			cmp.Or(ts.code, "SlowDown"), len(ts.requests))
		return
	}
	switch r.Method {
	case http.MethodPut:
		ts.object = body
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
	case http.MethodGet:
		w.Header().Set("Content-Length", fmt.Sprint(len(ts.object)))
		w.Write(ts.object)
	default:
		http.Error(w, "unexpected "+r.Method, http.StatusMethodNotAllowed)
	}
}

func (ts *throttlingServer) log() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.requests)
}

func openThrottled(t *testing.T, ts *throttlingServer) objstore.Store {
	t.Helper()
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	s3TestEnv(t, "test-access-key", "test-secret-key")
	s, err := objstore.Open(t.Context(), "s3://bucket/p?region=us-east-1&endpoint="+srv.URL, objstore.Options{HTTPClient: testHTTPClient(t)}.WithTestKnobs(objstore.TestKnobs{
		MaxBackoff: 10 * time.Millisecond,
	}))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Throttling (503 SlowDown) is retried with backoff, the body sent whole
// again each time, until the store accepts.
func TestS3RetriesSlowDown(t *testing.T) {
	ts := &throttlingServer{fail: 2}
	s := openThrottled(t, ts)
	body := randBytes(20, 3000)
	if err := s.Put(t.Context(), "k", io.MultiReader(bytes.NewReader(body)), int64(len(body))); err != nil {
		t.Fatalf("Put through two SlowDowns: %v", err)
	}
	reqs := ts.log()
	if len(reqs) != 3 {
		t.Fatalf("server saw %v; want 3 PUTs", reqs)
	}
	for _, r := range reqs {
		if r != "PUT 3000" && r != "PUT " {
			t.Errorf("attempt %q did not carry the whole body", r)
		}
	}

	ts2 := &throttlingServer{fail: 2, object: []byte("hello")}
	s2 := openThrottled(t, ts2)
	if got := mustGet(t, s2, "k"); string(got) != "hello" {
		t.Errorf("Get through two SlowDowns = %q", got)
	}
	if n := len(ts2.log()); n != 3 {
		t.Errorf("server saw %d GETs, want 3", n)
	}
}

// Retries are bounded: a store that keeps throttling fails the call after
// objstore.MaxAttempts, saying why; an error that retrying cannot fix is not retried.
func TestS3RetriesGiveUp(t *testing.T) {
	ts := &throttlingServer{fail: 1000}
	s := openThrottled(t, ts)
	_, err := s.Get(t.Context(), "k")
	if err == nil || !strings.Contains(err.Error(), "SlowDown") {
		t.Fatalf("Get from a store that always throttles = %v, want a SlowDown error", err)
	}
	if n := len(ts.log()); n != objstore.MaxAttempts {
		t.Errorf("server saw %d attempts, want %d", n, objstore.MaxAttempts)
	}

	denied := &throttlingServer{fail: 1000, status: http.StatusForbidden, code: "AccessDenied"}
	s = openThrottled(t, denied)
	err = s.Put(t.Context(), "k", strings.NewReader("x"), 1)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Put to a store that denies access = %v", err)
	}
	if n := len(denied.log()); n != 1 {
		t.Errorf("AccessDenied was tried %d times, want once", n)
	}
}

// Without credentials every call fails before reaching the store, and the
// error names the variables to set rather than only the sources the SDK
// tried.
func TestS3MissingCredentialsNamesTheVariables(t *testing.T) {
	ts := &throttlingServer{object: []byte("x")}
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	s3TestEnv(t, "", "")
	s, err := objstore.Open(t.Context(), "s3://bucket/p?region=us-east-1&endpoint="+srv.URL, objstore.Options{HTTPClient: testHTTPClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(t.Context(), "k")
	if !errors.Is(err, objstore.ErrNoCredentials) || !strings.Contains(err.Error(), "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") {
		t.Fatalf("Get without credentials = %v, want an error naming AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", err)
	}
	if reqs := ts.log(); len(reqs) != 0 {
		t.Errorf("the store saw %v without credentials", reqs)
	}
}
