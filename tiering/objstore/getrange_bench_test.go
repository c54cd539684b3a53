package objstore_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/strata-broker/strata/tiering/objstore"
)

// BenchmarkS3GetRangeRequest measures what one ranged GET costs apart from
// its body: the server, in this process (its work is in the figure too),
// answers every request with 64 bytes from memory, so the S3 client's
// per-request work (middleware, signing, HTTP) is most of it.
func BenchmarkS3GetRangeRequest(b *testing.B) {
	body := make([]byte, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Content-Range", "bytes 0-63/1000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	s3TestEnv(b, "test-access-key", "test-secret-key")
	s, err := objstore.Open(b.Context(), "s3://bucket/p?region=us-east-1&endpoint="+srv.URL, objstore.Options{HTTPClient: testHTTPClient(b)})
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
