package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/internal/tlsconf"
	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/tiering/objstore"
)

// TestS3CustomCA: MinIO serves S3 over TLS with a certificate from a
// private CA. The store opened with ca_bundle naming that CA writes and
// reads; without it the certificate does not verify and the write fails;
// a ca_bundle that is not PEM fails the open.
func TestS3CustomCA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO")
	}
	g, err := tlsconf.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.NewTestMinIO(t, testenv.MinIOOptions{TLS: &testenv.MinIOTLS{KeyStore: g.Server, CA: g.CA}})
	env := m.S3()
	if !strings.HasPrefix(env.Endpoint, "https://") {
		t.Fatalf("MinIO endpoint %s is not TLS", env.Endpoint)
	}
	s3TestEnv(t, env.AccessKey, env.SecretKey)
	base := fmt.Sprintf("s3://%s/ca?endpoint=%s&region=%s", env.Bucket, env.Endpoint, env.Region)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	s, err := objstore.Open(ctx, base+"&ca_bundle="+url.QueryEscape(g.CA), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.String(), "ca_bundle=") {
		t.Errorf("the store's URL %s does not show its CA bundle", s)
	}
	body := []byte("over TLS with a private CA")
	if err := s.Put(ctx, "k", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("put with the CA: %v", err)
	}
	r, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get with the CA: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get with the CA: %q, %v", got, err)
	}

	// Without the bundle, the system's roots do not know the CA.
	plain, err := objstore.Open(ctx, base, objstore.Options{HTTPClient: testHTTPClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = plain.Put(ctx, "refused", bytes.NewReader(body), int64(len(body)))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("put without the CA: %v, want a certificate error", err)
	}

	// A bundle that holds no certificate fails the open, not the first
	// upload.
	if _, err := objstore.Open(ctx, base+"&ca_bundle="+url.QueryEscape(g.Client+"-missing"), objstore.Options{}); err == nil {
		t.Fatal("open with a missing ca_bundle succeeded")
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := objstore.Open(ctx, base+"&ca_bundle="+url.QueryEscape(notPEM), objstore.Options{}); err == nil ||
		!strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("open with a ca_bundle of no certificate: %v", err)
	}
}
