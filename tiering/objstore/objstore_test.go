package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/strata-broker/strata/tiering/objstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openLocalForTest(t *testing.T, dir string, opts objstore.Options) objstore.Store {
	t.Helper()
	s, err := objstore.Open(t.Context(), "file://"+dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocalStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects") // Open creates it
	testStore(t, openLocalForTest(t, dir, objstore.Options{}))
}

// The local store keeps keys as files, hides unfinished Puts, and prunes
// the directories a Delete empties, but never the root.
func TestLocalStoreLayout(t *testing.T) {
	dir := t.TempDir()
	s := openLocalForTest(t, dir, objstore.Options{})
	ctx := t.Context()
	if got, want := s.String(), "file://"+dir; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	mustPut(t, s, "t-0/00000000000000000000.log", []byte("segment"))
	b, err := os.ReadFile(filepath.Join(dir, "t-0", "00000000000000000000.log"))
	if err != nil || string(b) != "segment" {
		t.Fatalf("object file = %q, %v", b, err)
	}
	// A Put that crashed left its temporary file: nobody sees it.
	if err := os.WriteFile(filepath.Join(dir, "t-0", objstore.TmpPrefix+"123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx, "")
	if err != nil || len(infos) != 1 || infos[0].Key != "t-0/00000000000000000000.log" {
		t.Fatalf("List = %v, %v; want only the segment", infos, err)
	}
	if err := os.Remove(filepath.Join(dir, "t-0", objstore.TmpPrefix+"123")); err != nil {
		t.Fatal(err)
	}
	// A successful Put leaves no temporary file.
	entries, err := os.ReadDir(filepath.Join(dir, "t-0"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("t-0 holds %v, %v; want only the segment", entries, err)
	}

	mustPut(t, s, "a/b/c/d", []byte("x"))
	if err := s.Delete(ctx, "a/b/c/d", "t-0/00000000000000000000.log"); err != nil {
		t.Fatal(err)
	}
	entries, err = os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("after deleting every object the root holds %v, %v; want nothing", entries, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("root pruned: %v", err)
	}

	// A key cannot be an object and a directory at once here.
	mustPut(t, s, "x/y", []byte("1"))
	if err := s.Put(ctx, "x", bytes.NewReader([]byte("2")), 1); err == nil {
		t.Error("Put(x) over the directory of x/y succeeded")
	}
	if err := s.Put(ctx, "x/y/z", bytes.NewReader([]byte("2")), 1); err == nil {
		t.Error("Put(x/y/z) below the object x/y succeeded")
	}
	// Deleting the "directory" x deletes nothing.
	if err := s.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "x/y"); string(got) != "1" {
		t.Errorf("x/y = %q after Delete(x)", got)
	}
}

func TestOpenBadURLs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	for _, c := range []struct{ url, want string }{
		{"", "no scheme"},
		{"/var/lib/strata", "no scheme"},
		{"gs://bucket", `unsupported scheme "gs"`},
		{"http://bucket", `unsupported scheme "http"`},
		{"s3://", "no bucket"},
		{"s3:bucket", "no bucket"},
		{"s3:///prefix", "no bucket"},
		{"s3://Bad_Bucket/x?region=us-east-1", "invalid bucket name"},
		{"s3://b/x?region=us-east-1", "invalid bucket name"},
		{"s3://bucket/a/../b?region=us-east-1", "prefix"},
		{"s3://bucket/a//b?region=us-east-1", "prefix"},
		{"s3://bucket?region=us-east-1&endpont=http://127.0.0.1:9000", `unknown parameter "endpont"`},
		{"s3://bucket?region=a&region=b", "more than once"},
		{"s3://bucket?endpoint=127.0.0.1:9000", "endpoint"},
		{"s3://bucket?endpoint=ftp://127.0.0.1:9000", "must begin with http:// or https://"},
		{"s3://bucket?endpoint=http://", "has no host"},
		{"s3://bucket?endpoint=http://user:pass@127.0.0.1:9000", "credentials do not belong"},
		{"s3://bucket?endpoint=http://127.0.0.1:9000&path_style=maybe", "not a boolean"},
		{"s3://AKIA:secret@bucket/prefix", "credentials do not belong"},
		{"s3://bucket/prefix", "no region"},
		{"s3://bucket/prefix#frag", "fragment"},
		{"file://relative/path", "absolute path"},
		{"file:relative", "absolute path"},
		{"file:///tmp/x?sync=1", "query"},
		{"file://" + file, "not a directory"},
		{"s3://bucket/%zz", "cannot parse"},
		// Credentials in the wrong place: refused, and not repeated.
		{"s3://AKIAEXAMPLE@bucket/prefix?region=us-east-1", "credentials do not belong"},
		{"s3://bucket?region=us-east-1&aws_secret_access_key=S3CR3T", `unknown parameter "aws_secret_access_key"`},
		{"s3://bucket?region=us-east-1&token=S3CR3T#S3CR3T", "fragment"},
		{"s3://bucket?endpoint=http://127.0.0.1:9000/?X-Amz-Credential=AKIAEXAMPLE", "must not have a query"},
		{"file:///tmp/x?key=S3CR3T", "query"},
		{"file://AKIAEXAMPLE:S3CR3T@/tmp/x", "not supported"},
	} {
		s, err := objstore.Open(t.Context(), c.url, objstore.Options{})
		if err == nil {
			t.Errorf("Open(%q) = %v, want an error containing %q", c.url, s, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", c.url, err, c.want)
		}
		if msg := err.Error(); strings.Contains(msg, ":secret") || strings.Contains(msg, "pass@") ||
			strings.Contains(msg, "S3CR3T") || strings.Contains(msg, "AKIAEXAMPLE") {
			t.Errorf("Open(%q) error shows the credentials: %v", c.url, err)
		}
	}
}

func TestOpenS3URL(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	for _, c := range []struct{ url, want string }{
		{"s3://bucket/tiered/?endpoint=http://127.0.0.1:9000/&region=eu-west-1",
			"s3://bucket/tiered/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true&region=eu-west-1"},
		// With an endpoint and no region: MinIO's default region.
		{"s3://my.bucket?endpoint=https://minio.internal:9000&path_style=false",
			"s3://my.bucket/?endpoint=https%3A%2F%2Fminio.internal%3A9000&path_style=false&region=us-east-1"},
		{"s3://bucket/a/b?region=us-east-2", "s3://bucket/a/b/?path_style=false&region=us-east-2"},
		{"s3://bucket?region=us-east-2&path_style", "s3://bucket/?path_style=true&region=us-east-2"},
	} {
		s, err := objstore.Open(t.Context(), c.url, objstore.Options{})
		if err != nil {
			t.Errorf("Open(%q): %v", c.url, err)
			continue
		}
		if got := s.String(); got != c.want {
			t.Errorf("Open(%q).String() = %q, want %q", c.url, got, c.want)
		}
	}
	// The region can come from the environment.
	t.Setenv("AWS_REGION", "ap-south-1")
	s, err := objstore.Open(t.Context(), "s3://bucket", objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "s3://bucket/?path_style=false&region=ap-south-1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// Every call is counted by operation and outcome; a missing object and a
// cancelled call are not errors. Two stores share one registry.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := openLocalForTest(t, t.TempDir(), objstore.Options{Registerer: reg})
	openLocalForTest(t, t.TempDir(), objstore.Options{Registerer: reg}) // registers again without error
	ctx := t.Context()
	mustPut(t, s, "k", []byte("v"))
	mustGet(t, s, "k")
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s.GetRange(ctx, "k", 0, 2); err == nil {
		t.Fatal("GetRange past the end succeeded")
	}
	if _, _, err := s.Exists(ctx, "missing"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(cctx, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a cancelled context = %v", err)
	}

	series := gather(t, reg)
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`strata_objstore_requests_total{op="put",outcome="success"}`, 1},
		{`strata_objstore_requests_total{op="get",outcome="success"}`, 1},
		{`strata_objstore_requests_total{op="get",outcome="not_found"}`, 1},
		{`strata_objstore_requests_total{op="get_range",outcome="error"}`, 1},
		{`strata_objstore_requests_total{op="exists",outcome="success"}`, 1},
		{`strata_objstore_requests_total{op="list",outcome="success"}`, 1},
		{`strata_objstore_requests_total{op="list",outcome="canceled"}`, 1},
		{`strata_objstore_requests_total{op="delete",outcome="success"}`, 1},
		{`strata_objstore_requests_total{op="put",outcome="error"}`, 0}, // present, at zero
		{`strata_objstore_errors_total{op="get_range"}`, 1},
		{`strata_objstore_errors_total{op="get"}`, 0},  // not found is no error
		{`strata_objstore_errors_total{op="list"}`, 0}, // nor is a cancelled call
		{`strata_objstore_request_seconds_count{op="put"}`, 1},
		{`strata_objstore_request_seconds_count{op="list"}`, 2},
	} {
		got, ok := series[c.series]
		if !ok || got != c.want {
			t.Errorf("%s = %v (present: %v), want %v", c.series, got, ok, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "strata_objstore_request_seconds"); err != nil || n != len(objstore.AllOps) {
		t.Errorf("request_seconds has %d series, %v; want one per operation", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v, %v", problems, err)
	}
}

// gather returns every counter, and every histogram's count, of reg by
// name{labels} in the text format's spelling.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			ls := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[f.GetName()+ls] = m.GetCounter().GetValue()
			case m.Histogram != nil:
				out[f.GetName()+"_count"+ls] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
