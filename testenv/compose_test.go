package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/strata-broker/strata/internal/await"
	"github.com/strata-broker/strata/testenv"
)

// composeFile is the part of deploy/compose.yaml that the processes started
// here are made from.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeVar is compose's ${NAME} and ${NAME:-default}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// loadCompose reads deploy/compose.yaml as compose would with none of its
// variables set: each takes its default.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var unset []string
	text := composeVar.ReplaceAllStringFunc(string(raw), func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if !strings.Contains(m, ":-") {
			unset = append(unset, sub[1])
		}
		return sub[2]
	})
	if len(unset) > 0 {
		t.Fatalf("deploy/compose.yaml uses %v without a default: a user who sets nothing gets empty values", unset)
	}
	var f composeFile
	if err := yaml.Unmarshal([]byte(text), &f); err != nil {
		t.Fatalf("parse deploy/compose.yaml: %v", err)
	}
	return f
}

// composeAddr is host:port in a command line or an environment value,
// after "//", "@", "=", "," or at the start.
var composeAddr = regexp.MustCompile(`(^|[/@=,])([A-Za-z0-9.-]+):([0-9]+)`)

// composeBroker is one broker service of the compose file as a process:
// its container ports mapped to loopback ports of this machine.
type composeBroker struct {
	name    string
	svc     composeService
	ports   map[int]string // container port -> 127.0.0.1:<free port>
	dataDir map[string]string
	home    string
	logPath string
	proc    *exec.Cmd
	done    chan struct{}
}

// composeCluster maps the compose network's names onto this machine.
type composeCluster struct {
	brokers []*composeBroker
	etcd    string // etcd:2379
	minio   string // minio:9000
}

// rewrite replaces every address of the compose network in s, seen from
// broker b's container, with where that service listens here, and every
// volume mount of b with its directory. An address it cannot place fails
// the test, so a new service or port in the compose file cannot slip past.
func (c *composeCluster) rewrite(t *testing.T, b *composeBroker, s string) string {
	t.Helper()
	for mount, dir := range b.dataDir {
		s = strings.ReplaceAll(s, mount, dir)
	}
	return composeAddr.ReplaceAllStringFunc(s, func(m string) string {
		sub := composeAddr.FindStringSubmatch(m)
		prefix, host := sub[1], sub[2]
		port, _ := strconv.Atoi(sub[3])
		switch {
		case host == "etcd" && port == 2379:
			return prefix + c.etcd
		case host == "minio" && port == 9000:
			return prefix + c.minio
		case host == "0.0.0.0" || host == "127.0.0.1" || host == "localhost" || host == b.name:
			// Published ports keep their number (compose.yaml maps
			// N:N), so localhost:N on the host is the container's N.
			if addr, ok := b.ports[port]; ok {
				return prefix + addr
			}
		default:
			for _, o := range c.brokers {
				if o.name == host {
					if addr, ok := o.ports[port]; ok {
						return prefix + addr
					}
				}
			}
		}
		t.Fatalf("service %s: address %s:%d is no service's port in deploy/compose.yaml", b.name, host, port)
		return ""
	})
}

// env is b's container environment, rewritten. Nothing of the test's own
// environment is passed: the broker sees what the compose file gives it.
func (c *composeCluster) env(t *testing.T, b *composeBroker) []string {
	t.Helper()
	env := []string{"HOME=" + b.home}
	for k, v := range b.svc.Environment {
		env = append(env, k+"="+c.rewrite(t, b, v))
	}
	return env
}

func (c *composeCluster) start(t *testing.T, b *composeBroker) {
	t.Helper()
	var args []string
	for _, a := range b.svc.Command {
		args = append(args, c.rewrite(t, b, a))
	}
	log, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// The image's entrypoint is the strata binary; command is its
	// arguments.
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Env = c.env(t, b)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = testenv.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", b.name, err)
	}
	b.proc, b.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		close(done)
	}(b.done)
}

// kill ends b at once, as a lost host would.
func (b *composeBroker) kill() {
	if b.proc == nil {
		return
	}
	b.proc.Process.Kill()
	<-b.done
	b.proc = nil
}

// stop asks b to shut down, then kills it if it has not within 20 seconds.
func (b *composeBroker) stop() {
	if b.proc == nil {
		return
	}
	b.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
		b.proc = nil
	case <-time.After(20 * time.Second):
		b.kill()
	}
}

// healthy runs b's compose health check with b's environment, as
// `docker exec` would.
func (c *composeCluster) healthy(t *testing.T, b *composeBroker) error {
	t.Helper()
	test := b.svc.Healthcheck.Test
	if len(test) < 2 || test[0] != "CMD" || test[1] != "strata" {
		t.Fatalf("service %s: health check %q is not a strata command", b.name, test)
	}
	var args []string
	for _, a := range test[2:] {
		args = append(args, c.rewrite(t, b, a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), args...)
	cmd.Env = c.env(t, b)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s health check: %w: %s", b.name, err, out)
	}
	return nil
}

// createBucket is the compose file's create-bucket service: mc's
// `mb --ignore-existing ALIAS/BUCKET` with the alias from MC_HOST_<alias>,
// done here with an S3 client since mc is not installed.
func (c *composeCluster) createBucket(ctx context.Context, t *testing.T, svc composeService) (bucket string, creds *url.URL) {
	t.Helper()
	if len(svc.Command) != 3 || svc.Command[0] != "mb" || svc.Command[1] != "--ignore-existing" {
		t.Fatalf("create-bucket runs %q, want mb --ignore-existing ALIAS/BUCKET", svc.Command)
	}
	alias, bucket, ok := strings.Cut(svc.Command[2], "/")
	if !ok {
		t.Fatalf("create-bucket: %q is not ALIAS/BUCKET", svc.Command[2])
	}
	u, err := url.Parse(svc.Environment["MC_HOST_"+alias])
	if err != nil || u.User == nil {
		t.Fatalf("create-bucket: MC_HOST_%s %q is not http://KEY:SECRET@HOST:PORT: %v", alias, svc.Environment["MC_HOST_"+alias], err)
	}
	if u.Host != "minio:9000" {
		t.Fatalf("create-bucket: MC_HOST_%s names %s, want minio:9000", alias, u.Host)
	}
	secret, _ := u.User.Password()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := s3.New(s3.Options{
		Region:       testenv.DefaultRegion,
		BaseEndpoint: aws.String("http://" + c.minio),
		UsePathStyle: true,
		Credentials:  awscreds.NewStaticCredentialsProvider(u.User.Username(), secret, ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create-bucket: %v", err)
	}
	return bucket, u
}

// The cluster of deploy/compose.yaml, its brokers run as processes with the
// compose file's command lines and environments (addresses of the compose
// network mapped to loopback ports, volumes to directories) against etcd
// and a MinIO that holds the compose file's credentials: the brokers
// start and pass their health checks, a replication-factor-3 tiered topic
// uploads to the bucket, and killing a broker loses no acknowledged record.
func TestComposeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, MinIO and three brokers")
	}
	f := loadCompose(t)
	var names []string
	for name := range f.Services {
		if strings.HasPrefix(name, "strata-") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) != 3 {
		t.Fatalf("deploy/compose.yaml has brokers %v, want three", names)
	}
	minioSvc := f.Services["minio"]
	accessKey, secretKey := minioSvc.Environment["MINIO_ROOT_USER"], minioSvc.Environment["MINIO_ROOT_PASSWORD"]

	etcd := testenv.NewTestEtcd(t, testenv.EtcdOptions{})
	// MinIO's own bucket is not the brokers': the compose file's
	// create-bucket step must make that one.
	mio := testenv.NewTestMinIO(t, testenv.MinIOOptions{AccessKey: accessKey, SecretKey: secretKey, Bucket: "testenv-unused"})
	c := &composeCluster{etcd: etcd.ClientAddr(), minio: mio.Addr()}

	dir := t.TempDir()
	bound := regexp.MustCompile(`0\.0\.0\.0:([0-9]+)`)
	taken := map[string]bool{}
	for _, name := range names {
		svc := f.Services[name]
		b := &composeBroker{name: name, svc: svc, ports: map[int]string{}, dataDir: map[string]string{},
			home: filepath.Join(dir, name+"-home"), logPath: filepath.Join(dir, name+".log")}
		// The ports the broker binds, from its listen addresses.
		values := slices.Clone(svc.Command)
		for _, v := range svc.Environment {
			values = append(values, v)
		}
		for _, v := range values {
			for _, m := range bound.FindAllStringSubmatch(v, -1) {
				port, _ := strconv.Atoi(m[1])
				for b.ports[port] == "" || taken[b.ports[port]] {
					b.ports[port] = testenv.FreeAddr(t)
				}
				taken[b.ports[port]] = true
			}
		}
		for _, p := range svc.Ports {
			host, container, _ := strings.Cut(p, ":")
			n, _ := strconv.Atoi(container)
			if host != container || b.ports[n] == "" {
				t.Fatalf("service %s publishes %q: want N:N for a port the broker binds", name, p)
			}
		}
		for _, v := range svc.Volumes {
			vol, mount, ok := strings.Cut(v, ":")
			if !ok {
				t.Fatalf("service %s: volume %q is not NAME:PATH", name, v)
			}
			b.dataDir[mount] = filepath.Join(dir, vol)
		}
		c.brokers = append(c.brokers, b)
	}
	t.Cleanup(func() {
		for _, b := range c.brokers {
			b.stop()
		}
		if t.Failed() {
			for _, b := range c.brokers {
				out, _ := os.ReadFile(b.logPath)
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				t.Logf("%s log tail:\n%s", b.name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bucket, mcHost := c.createBucket(ctx, t, f.Services["create-bucket"])
	if secret, _ := mcHost.User.Password(); mcHost.User.Username() != accessKey || secret != secretKey {
		t.Fatalf("create-bucket's credentials are not MinIO's root user")
	}
	for _, b := range c.brokers {
		store, err := url.Parse(b.svc.Environment["STRATA_OBJECT_STORE"])
		if err != nil || store.Host != bucket {
			t.Fatalf("%s: STRATA_OBJECT_STORE %q is not in bucket %s: %v", b.name, b.svc.Environment["STRATA_OBJECT_STORE"], bucket, err)
		}
		if b.svc.Environment["AWS_ACCESS_KEY_ID"] != accessKey || b.svc.Environment["AWS_SECRET_ACCESS_KEY"] != secretKey {
			t.Fatalf("%s: the AWS credentials are not MinIO's", b.name)
		}
		c.start(t, b)
	}
	for _, b := range c.brokers {
		await.NoError(t, 60*time.Second, b.name+"'s health check to pass", func() error {
			select {
			case <-b.done:
				t.Fatalf("%s exited before its health check passed", b.name)
			default:
			}
			return c.healthy(t, b)
		})
	}

	// Clients on the host bootstrap from the published Kafka ports.
	var seeds []string
	for _, b := range c.brokers {
		for _, p := range b.svc.Ports {
			n, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[1])
			seeds = append(seeds, b.ports[n])
		}
	}
	const topic = "orders"
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordRetries(20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// franz-go does not give up on records in flight when ctx ends; closing
	// the client fails them, so a cluster that never acknowledges fails the
	// test at the deadline instead of hanging it.
	defer context.AfterFunc(ctx, cl.Close)()
	adm := kadm.NewClient(cl)
	one := func(s string) *string { return &s }
	created, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{
		"remote.storage.enable": one("true"), "segment.bytes": one("1048576"), "min.insync.replicas": one("2"),
	}, topic)
	if err == nil {
		err = created.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}

	// Records of 1 KiB: enough that every partition seals a 1 MiB segment
	// for the tiering to upload.
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i += 100 {
			var recs []*kgo.Record
			for j := i; j < min(i+100, to); j++ {
				recs = append(recs, &kgo.Record{Key: recordKey(j), Value: fmt.Appendf(nil, "%d-%01020d", j, j)})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				if ctx.Err() != nil {
					err = fmt.Errorf("not acknowledged by the deadline: %w", err)
				}
				t.Fatalf("produce records %d-%d: %v", i, i+len(recs)-1, err)
			}
		}
	}
	const before, after = 4500, 500
	produce(0, before)

	s3env := mio.S3()
	s3env.Bucket = bucket
	objects := s3Client(t, s3env)
	await.True(t, 90*time.Second, "a sealed segment of "+topic+" in the compose file's bucket", func() bool {
		// The listing is read to its end: minio-go's goroutine behind it
		// ends only then.
		found := false
		for obj := range objects.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err == nil && strings.Contains(obj.Key, "/"+topic+"/") && strings.HasSuffix(obj.Key, ".log") {
				found = true
			}
		}
		return found
	})

	// Kill the leader of partition 0, as a lost host would, and keep
	// producing: the other two hold every acknowledged record.
	var victim *composeBroker
	await.NoError(t, 30*time.Second, "a leader of "+topic+"-0", func() error {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		p, ok := md.Topics[topic].Partitions[0]
		if !ok || p.Leader < 1 || int(p.Leader) > len(c.brokers) {
			return errors.New("no leader yet")
		}
		victim = c.brokers[p.Leader-1]
		return nil
	})
	victim.kill()
	t.Logf("killed %s", victim.name)
	produce(before, before+after)

	// Read everything back through a new client: every record, once.
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := make(map[int]int, before+after)
	for len(seen) < before+after {
		fetches := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records before the deadline", len(seen), before+after)
		}
		fetches.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fetches.EachRecord(func(r *kgo.Record) {
			i, ok := recordIndex(r.Key)
			if !ok || string(r.Value) != fmt.Sprintf("%d-%01020d", i, i) {
				t.Fatalf("record %q at %s-%d@%d is none produced", r.Key, r.Topic, r.Partition, r.Offset)
			}
			seen[i]++
		})
	}
	for i, n := range seen {
		if n != 1 || i >= before+after {
			t.Fatalf("record %d read %d times", i, n)
		}
	}
}
