package objstore_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/strata-broker/strata/tiering/objstore"
)

// BenchmarkS3GetRangeRequest measures the client's cost of one ranged GET,
// apart from its body: the server answers every request with 64 bytes
// from memory.
func BenchmarkS3GetRangeRequest(b *testing.B) {
	body := make([]byte, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Content-Range", "bytes 0-63/1000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	for _, k := range []string{"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"} {
		b.Setenv(k, b.TempDir()+"/none")
	}
	b.Setenv("AWS_ACCESS_KEY_ID", "k")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b.Setenv("AWS_CA_BUNDLE", "")
	s, err := objstore.Open(b.Context(), "s3://bucket/p?region=us-east-1&endpoint="+srv.URL, objstore.Options{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rc, err := s.GetRange(b.Context(), "seg.log", 0, int64(len(body)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
