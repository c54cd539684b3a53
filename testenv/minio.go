package testenv

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	// MinIOVersion is the MinIO server the environment runs: a pinned
	// pseudo-version, so every machine builds the same server.
	MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"
	minioModule  = "github.com/minio/minio"

	// DefaultBucket, DefaultRegion and the default credentials are what a
	// MinIO started without options serves.
	DefaultBucket    = "strata"
	DefaultRegion    = "us-east-1"
	DefaultAccessKey = "strata-testenv"
	DefaultSecretKey = "strata-testenv-secret"
)

// MinIOOptions configures StartMinIO. Zero values take the defaults above.
type MinIOOptions struct {
	// Dir holds the data directory (Dir/data) and the log (Dir/minio.log).
	// Required.
	Dir string
	// Binary is the minio binary; empty means MinIOBinary's.
	Binary    string
	Bucket    string
	AccessKey string
	// SecretKey must have at least 8 characters (MinIO's rule).
	SecretKey string
	// Logger receives what testenv does; nil discards it.
	Logger *slog.Logger
	// TLS, when set, serves S3 over TLS (Endpoint is then https://).
	TLS *MinIOTLS
}

// MinIOTLS is the TLS of MinIO's S3 port.
type MinIOTLS struct {
	// KeyStore is a PEM file with MinIO's private key and certificate
	// chain (tlsconf's layout); they are copied into MinIO's --certs-dir
	// as private.key and public.crt.
	KeyStore string
	// CA verifies MinIO's certificate for testenv's own requests (health,
	// bucket creation).
	CA string
}

// S3Env is what a client needs to reach a MinIO.
type S3Env struct {
	// Endpoint is the URL, http://127.0.0.1:<port>.
	Endpoint  string `json:"endpoint"`
	Bucket    string `json:"bucket"`
	Region    string `json:"region"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// MinIO is a single-drive MinIO server running as its own process on
// loopback, with one bucket. Stop and Start keep its ports and data. Methods
// are safe for concurrent use.
type MinIO struct {
	dataDir     string
	logPath     string
	bin         string
	ports       *heldAddrs // addr and consoleAddr, held across restarts
	addr        string
	consoleAddr string
	bucket      string
	accessKey   string
	secretKey   string
	logger      *slog.Logger
	// certsDir is MinIO's --certs-dir and clientTLS what verifies it, both
	// set with MinIOOptions.TLS.
	certsDir  string
	clientTLS *tls.Config

	mu      sync.Mutex
	proc    *process
	crashes []error
}

// MinIOBinary returns the path of the MinIO server at MinIOVersion, building
// it once into the user's cache (<cache>/strata/minio-<version>/minio) with
// `go install` when it is not there. The build takes a few minutes.
func MinIOBinary(ctx context.Context, logger *slog.Logger) (string, error) {
	path, err := toolPath("minio", MinIOVersion, "minio")
	if err != nil {
		return "", err
	}
	return cachedTool(ctx, orDiscard(logger), path, func(ctx context.Context, tmpDir string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", "install", minioModule+"@"+MinIOVersion)
		// Outside any module and workspace: `go install pkg@version` builds
		// with MinIO's own go.mod.
		cmd.Dir = tmpDir
		cmd.Env = append(os.Environ(), "GOBIN="+tmpDir, "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go install %s@%s: %w\n%s", minioModule, MinIOVersion, err, b)
		}
		return filepath.Join(tmpDir, "minio"), nil
	})
}

// StartMinIO starts MinIO on free loopback ports (S3 API and console), waits
// until it serves, and creates the bucket.
func StartMinIO(ctx context.Context, opts MinIOOptions) (*MinIO, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: MinIOOptions.Dir is required")
	}
	logger := orDiscard(opts.Logger)
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = MinIOBinary(ctx, logger); err != nil {
			return nil, err
		}
	}
	m := &MinIO{
		dataDir:   filepath.Join(opts.Dir, "data"),
		logPath:   filepath.Join(opts.Dir, "minio.log"),
		bin:       bin,
		bucket:    cmp.Or(opts.Bucket, DefaultBucket),
		accessKey: cmp.Or(opts.AccessKey, DefaultAccessKey),
		secretKey: cmp.Or(opts.SecretKey, DefaultSecretKey),
		logger:    logger,
	}
	if len(m.secretKey) < 8 {
		return nil, errors.New("testenv: MinIO needs a secret key of at least 8 characters")
	}
	if err := os.MkdirAll(m.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create MinIO data directory: %w", err)
	}
	if opts.TLS != nil {
		if err := m.setUpTLS(filepath.Join(opts.Dir, "certs"), *opts.TLS); err != nil {
			return nil, fmt.Errorf("MinIO TLS: %w", err)
		}
	}
	for attempt := 1; ; attempt++ {
		m.ports.release()
		ports, err := holdLoopbackAddrs(2)
		if err != nil {
			return nil, err
		}
		m.ports = ports
		m.addr, m.consoleAddr = ports.addrs[0], ports.addrs[1]
		logStart := fileSize(m.logPath)
		err = m.Start(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, errExited) && attempt < portAttempts &&
			lostPortRace(logSince(m.logPath, logStart)) {
			logger.Warn("MinIO lost a port race; retrying with new ports", "attempt", attempt)
			m.forgetExit()
			continue
		}
		m.Kill()
		m.ports.release()
		return nil, err
	}
	if err := m.createBucket(ctx); err != nil {
		m.Kill()
		m.ports.release()
		return nil, err
	}
	logger.Info("MinIO ready", "endpoint", m.Endpoint(), "bucket", m.bucket, "pid", m.Pid())
	return m, nil
}

// NewTestMinIO starts MinIO for a test in t.TempDir() unless opts.Dir is
// set, failing the test if it does not start. A t.Cleanup stops it, fails the
// test if it exited without being asked to, and prints its log's tail if the
// test failed.
func NewTestMinIO(t testing.TB, opts MinIOOptions) *MinIO {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	m, err := StartMinIO(t.Context(), opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
		if t.Failed() {
			t.Log(tailNote(m.logPath))
		}
	})
	return m
}

// Endpoint is the S3 URL, http://127.0.0.1:<port>, or https:// with
// MinIOOptions.TLS.
func (m *MinIO) Endpoint() string {
	if m.certsDir != "" {
		return "https://" + m.addr
	}
	return "http://" + m.addr
}

// setUpTLS writes MinIO's certs directory from the key store: the key
// and the certificates in the files MinIO reads.
func (m *MinIO) setUpTLS(dir string, t MinIOTLS) error {
	data, err := os.ReadFile(t.KeyStore)
	if err != nil {
		return err
	}
	var key, certs []byte
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			certs = append(certs, pem.EncodeToMemory(b)...)
		} else if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			key = pem.EncodeToMemory(b)
		}
	}
	if key == nil || certs == nil {
		return fmt.Errorf("%s: want a private key and a certificate", t.KeyStore)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), key, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), certs, 0o600); err != nil {
		return err
	}
	ca, err := os.ReadFile(t.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s: no CA certificate", t.CA)
	}
	m.certsDir, m.clientTLS = dir, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return nil
}

// Addr is the S3 address, 127.0.0.1:<port>.
func (m *MinIO) Addr() string { return m.addr }

// ConsoleAddr is the web console's address.
func (m *MinIO) ConsoleAddr() string { return m.consoleAddr }

// DataDir is the directory MinIO stores objects in.
func (m *MinIO) DataDir() string { return m.dataDir }

// LogPath is the file collecting MinIO's output across every start.
func (m *MinIO) LogPath() string { return m.logPath }

// S3 is the endpoint, bucket, region and credentials.
func (m *MinIO) S3() S3Env {
	return S3Env{
		Endpoint:  m.Endpoint(),
		Bucket:    m.bucket,
		Region:    DefaultRegion,
		AccessKey: m.accessKey,
		SecretKey: m.secretKey,
	}
}

// Start starts MinIO on its ports and data directory (again, after Stop or
// Kill) and waits until it is live and its object layer serves. It fails if
// MinIO is running.
func (m *MinIO) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	m.mu.Lock()
	if prev := m.proc; prev != nil {
		if !prev.exited() {
			m.mu.Unlock()
			return fmt.Errorf("MinIO (pid %d) is still running", prev.pid())
		}
		m.noteCrashLocked(prev)
	}
	env := append(envWithout("MINIO_"),
		"MINIO_ROOT_USER="+m.accessKey,
		"MINIO_ROOT_PASSWORD="+m.secretKey,
		"MINIO_REGION="+DefaultRegion,
		// CI mode: a small buffer pool instead of one sized to the
		// machine's memory, and no refusal of a drive on the root disk.
		"MINIO_CI_CD=on",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
	)
	p, err := startProc(procSpec{
		name:    "minio",
		logPath: m.logPath,
		bin:     m.bin,
		args: append([]string{"server", m.dataDir,
			"--address", m.addr,
			"--console-address", m.consoleAddr,
		}, m.tlsArgs()...),
		env:      env,
		ownGroup: true,
	})
	if err != nil {
		m.mu.Unlock()
		return err
	}
	m.proc = p
	m.mu.Unlock()
	// Live means the process serves HTTP; the cluster check answers 200
	// only once the object layer is up, so the first request after Start
	// does not meet "server not initialized".
	for _, path := range []string{"/minio/health/live", "/minio/health/cluster"} {
		if err := p.waitHealthyTLS(ctx, m.Endpoint()+path, m.clientTLS); err != nil {
			return fmt.Errorf("%w%s", err, tailNote(m.logPath))
		}
	}
	return nil
}

// createBucket makes the bucket unless it exists. It speaks S3 through the
// AWS SDK, which the strata binary links anyway for tiering: `strata
// testenv` runs this, and a second S3 client library would grow the release
// binary for a test-only call.
func (m *MinIO) createBucket(ctx context.Context) error {
	tr := &http.Transport{ResponseHeaderTimeout: 30 * time.Second, TLSClientConfig: m.clientTLS}
	// Idle connections would otherwise outlive the call that used them.
	defer tr.CloseIdleConnections()
	client := s3.New(s3.Options{
		Region:       DefaultRegion,
		BaseEndpoint: aws.String(m.Endpoint()),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.accessKey, m.secretKey, ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(m.bucket)})
	if owned := (*types.BucketAlreadyOwnedByYou)(nil); err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s at %s: %w", m.bucket, m.addr, err)
	}
	return nil
}

func (m *MinIO) tlsArgs() []string {
	if m.certsDir == "" {
		return nil
	}
	return []string{"--certs-dir", m.certsDir}
}

// Stop sends SIGTERM and waits for MinIO to exit (killing it after
// stopTimeout). It does nothing if MinIO is not running.
func (m *MinIO) Stop() error {
	p := m.current()
	if p == nil || p.exited() {
		return nil
	}
	if err := p.terminate(stopTimeout); err != nil && !exitedOnTerm(err) {
		return fmt.Errorf("stop MinIO (pid %d): %w", p.pid(), err)
	}
	return nil
}

// Kill sends SIGKILL and waits until MinIO is gone.
func (m *MinIO) Kill() {
	if p := m.current(); p != nil {
		p.kill()
	}
}

// Pid is MinIO's process id, or 0 when it is not running.
func (m *MinIO) Pid() int {
	if p := m.current(); p != nil && !p.exited() {
		return p.pid()
	}
	return 0
}

// Close stops MinIO and reports any exit nobody asked for.
func (m *MinIO) Close() error {
	m.mu.Lock()
	if p := m.proc; p != nil {
		m.noteCrashLocked(p)
	}
	m.mu.Unlock()
	var errs []error
	if err := m.Stop(); err != nil {
		errs = append(errs, err)
	}
	m.ports.release()
	m.mu.Lock()
	errs = append(errs, m.crashes...)
	m.crashes = nil
	m.mu.Unlock()
	return errors.Join(errs...)
}

func (m *MinIO) current() *process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// noteCrashLocked records p's exit if nobody asked for it. Lock must be held.
func (m *MinIO) noteCrashLocked(p *process) {
	if p.crashed() {
		m.crashes = append(m.crashes, fmt.Errorf("MinIO (pid %d) exited on its own: %v%s", p.pid(), p.waitErr, tailNote(m.logPath)))
	}
}

func (m *MinIO) forgetExit() {
	if p := m.current(); p != nil {
		p.exitHandled.Store(true)
	}
}
