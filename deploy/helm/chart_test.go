// Package helm holds the tests of the Kubernetes chart in strata/: each
// renders it with `helm template` and decodes every document strictly into
// the Kubernetes API types, so a misspelt or misplaced field fails here, not
// at `helm install`.
package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/strata-broker/strata/testenv"
	"github.com/strata-broker/strata/topicconfig"
)

const (
	release   = "r1"
	namespace = "ns"
)

// helmEnv names the helm binary; `make test` sets it to what `make
// helm-tools` installs.
const helmEnv = "STRATA_HELM"

func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(helmEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v (make helm-tools installs it)", helmEnv, p, err)
		}
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	t.Skipf("no helm: set %s or run make helm-tools (make test does both)", helmEnv)
	return ""
}

// rendered is the chart's output, one typed object per document.
type rendered struct {
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	secrets      []*corev1.Secret
}

// render runs helm template on the chart with the given --set values, or
// values files given as -f=<path>.
func render(t *testing.T, set ...string) (*rendered, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	args := []string{"template", release, "./strata", "--namespace", namespace}
	for _, s := range set {
		if f, ok := strings.CutPrefix(s, "-f="); ok {
			args = append(args, "--values", f)
			continue
		}
		args = append(args, "--set", s)
	}
	cmd := exec.CommandContext(ctx, helmBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	out := &rendered{}
	for i, doc := range splitDocuments(stdout.Bytes()) {
		if err := out.decode(doc); err != nil {
			t.Fatalf("document %d: %v\n%s", i, err, doc)
		}
	}
	return out, nil
}

func mustRender(t *testing.T, set ...string) *rendered {
	t.Helper()
	r, err := render(t, set...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// splitDocuments splits a YAML stream at its "---" lines, dropping
// documents that hold only comments.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for doc := range bytes.SplitSeq(b, []byte("\n---")) {
		doc = bytes.TrimPrefix(doc, []byte("---"))
		meaningful := false
		for line := range bytes.SplitSeq(doc, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) > 0 && line[0] != '#' {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, doc)
		}
	}
	return docs
}

// decode decodes doc strictly (no unknown or duplicate fields) into the type
// of its apiVersion and kind; a kind the chart is not meant to make fails.
func (r *rendered) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("type: %w", err)
	}
	strict := func(obj any) error {
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
		}
		return nil
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 StatefulSet":
		var o appsv1.StatefulSet
		r.statefulSets = append(r.statefulSets, &o)
		return strict(&o)
	case "v1 Service":
		var o corev1.Service
		r.services = append(r.services, &o)
		return strict(&o)
	case "policy/v1 PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		r.pdbs = append(r.pdbs, &o)
		return strict(&o)
	case "v1 Secret":
		var o corev1.Secret
		r.secrets = append(r.secrets, &o)
		return strict(&o)
	}
	return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
}

func (r *rendered) statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	if len(r.statefulSets) != 1 {
		t.Fatalf("%d StatefulSets, want 1", len(r.statefulSets))
	}
	return r.statefulSets[0]
}

func (r *rendered) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for _, s := range r.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

func container(t *testing.T, ss *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	cs := ss.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return &cs[0]
}

const etcd = "secret.etcdEndpoints=etcd-0.etcd:2379"

func TestChartRendersOneClusterOfKubernetesObjects(t *testing.T) {
	r := mustRender(t, etcd)
	if len(r.services) != 2 || len(r.pdbs) != 1 || len(r.secrets) != 1 {
		t.Fatalf("%d Services, %d PodDisruptionBudgets, %d Secrets; want 2, 1, 1", len(r.services), len(r.pdbs), len(r.secrets))
	}
	ss := r.statefulSet(t)
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", ss.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(ss.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	podLabels := labels.Set(ss.Spec.Template.Labels)
	if sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("StatefulSet selector %s does not select its pods %v", sel, podLabels)
	}

	// The headless Service is what gives each pod its DNS name; it must be
	// the StatefulSet's own and list pods before they are ready.
	headless := r.service(t, ss.Spec.ServiceName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s clusterIP = %q, want None", headless.Name, headless.Spec.ClusterIP)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s does not publish not-ready pods: a starting broker could not be reached by its peers", headless.Name)
	}

	c := container(t, ss)
	named := make(map[string]int32)
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	for _, s := range r.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selector %v does not select the brokers", s.Name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			if _, ok := named[p.TargetPort.String()]; !ok {
				t.Errorf("Service %s port %s targets %q, not a container port", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if named[probe.HTTPGet.Port.String()] != named["http"] {
			t.Errorf("%s probe on port %s, not the HTTP listener", name, probe.HTTPGet.Port.String())
		}
	}

	pdb := r.pdbs[0]
	pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if pdbSel.Empty() || !pdbSel.Matches(podLabels) {
		t.Errorf("PodDisruptionBudget selector %s does not select the brokers", pdbSel)
	}
	if mu := pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1", mu)
	}
}

// expand resolves $(VAR) in the container's environment as the kubelet
// does: only from variables defined earlier in the list (a reference to a
// later or unknown one stays literal, which is what this reports), with
// fieldRef values taken from pod.
func expand(t *testing.T, c *corev1.Container, pod map[string]string) map[string]string {
	t.Helper()
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	env := make(map[string]string)
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				t.Errorf("%s: only fieldRef values are expected", e.Name)
				continue
			}
			v, ok := pod[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Errorf("%s: fieldRef %s is not a field this test knows", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
			continue
		}
		env[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(m string) string {
			name := ref.FindStringSubmatch(m)[1]
			v, ok := env[name]
			if !ok {
				t.Errorf("%s refers to $(%s), which is not defined above it: Kubernetes would leave it unexpanded", e.Name, name)
				return m
			}
			return v
		})
	}
	return env
}

// TestEachBrokerAdvertisesItsOwnPodName is the point of the headless
// Service: broker N advertises <pod N>.<headless>.<namespace>.svc, the name
// that resolves to that pod alone, and takes its node id from its ordinal.
func TestEachBrokerAdvertisesItsOwnPodName(t *testing.T) {
	r := mustRender(t, etcd, "ports.kafka=19092")
	ss := r.statefulSet(t)
	c := container(t, ss)
	pod := ss.Name + "-2"
	env := expand(t, c, map[string]string{
		"metadata.name":      pod,
		"metadata.namespace": namespace,
		"metadata.labels['apps.kubernetes.io/pod-index']": "2",
	})
	if env["STRATA_NODE_ID"] != "2" {
		t.Errorf("STRATA_NODE_ID = %q, want the pod's ordinal 2", env["STRATA_NODE_ID"])
	}
	host := fmt.Sprintf("%s.%s.%s.svc.cluster.local", pod, ss.Spec.ServiceName, namespace)
	ports := make(map[string]int32)
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for variable, port := range map[string]string{"STRATA_KAFKA_ADVERTISED_ADDR": "kafka", "STRATA_ADVERTISED_GRPC_ADDR": "grpc"} {
		want := net.JoinHostPort(host, fmt.Sprint(ports[port]))
		if env[variable] != want {
			t.Errorf("%s = %q, want %q", variable, env[variable], want)
		}
	}
	if ports["kafka"] != 19092 || env["STRATA_KAFKA_ADDR"] != "0.0.0.0:19092" {
		t.Errorf("ports.kafka=19092: container port %d, STRATA_KAFKA_ADDR %q", ports["kafka"], env["STRATA_KAFKA_ADDR"])
	}
}

// TestBrokerSettingsAreOnesTheBrokerReads checks the chart against the
// binary: every STRATA_ variable is one of `strata broker`'s flags (a
// misspelt one would be ignored) and every --config key is a broker setting.
func TestBrokerSettingsAreOnesTheBrokerReads(t *testing.T) {
	r := mustRender(t, etcd, "secret.objectStore=s3://b/p", "secret.awsAccessKeyId=a", "secret.awsSecretAccessKey=s")
	c := container(t, r.statefulSet(t))
	if len(c.Args) == 0 || c.Args[0] != "broker" {
		t.Fatalf("args %q: want the broker command", c.Args)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	help, err := exec.CommandContext(ctx, testenv.Binary(t), "broker", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("strata broker --help: %v\n%s", err, help)
	}
	flags := make(map[string]bool)
	for _, m := range regexp.MustCompile(`--([a-z0-9-]+)`).FindAllStringSubmatch(string(help), -1) {
		flags[m[1]] = true
	}
	variables := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		variables = append(variables, e.Name)
	}
	for _, s := range r.secrets {
		for k := range s.StringData {
			variables = append(variables, k)
		}
	}
	for _, v := range variables {
		name, ok := strings.CutPrefix(v, "STRATA_")
		if !ok {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if !flags[flag] {
			t.Errorf("%s: strata broker has no flag --%s", v, flag)
		}
	}

	settings := make(map[string]string)
	args := c.Args[1:]
	for len(args) > 0 {
		if args[0] != "--config" || len(args) < 2 {
			t.Fatalf("args %q: want --config key=value pairs", c.Args)
		}
		k, v, ok := strings.Cut(args[1], "=")
		if !ok {
			t.Fatalf("--config %q: no =", args[1])
		}
		settings[k] = v
		args = args[2:]
	}
	if len(settings) == 0 {
		t.Fatal("no --config settings rendered")
	}
	if err := topicconfig.CheckBrokerKeys(settings); err != nil {
		t.Errorf("the chart's broker settings: %v", err)
	}
}

// TestConfigNumbersFromAValuesFileStayIntegers guards against Go templates
// printing a YAML number (a float64) as 3.6e+06, which the broker refuses.
func TestConfigNumbersFromAValuesFileStayIntegers(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("config:\n  log.retention.ms: 3600000\n  log.cleaner.min.cleanable.ratio: 0.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := container(t, mustRender(t, etcd, "-f="+values).statefulSet(t))
	for _, want := range []string{"log.retention.ms=3600000", "log.cleaner.min.cleanable.ratio=0.25"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
}

// TestSettingsComeFromTheSecret covers both ways of giving etcd and the
// object store: a Secret made by the chart, or the user's own.
func TestSettingsComeFromTheSecret(t *testing.T) {
	t.Run("chart's Secret", func(t *testing.T) {
		r := mustRender(t, etcd, "secret.objectStore=s3://bucket/strata?endpoint=http://minio:9000", "secret.awsAccessKeyId=id", "secret.awsSecretAccessKey=key")
		ss := r.statefulSet(t)
		s := r.secrets[0]
		want := map[string]string{
			"STRATA_ETCD_ENDPOINTS": "etcd-0.etcd:2379",
			"STRATA_OBJECT_STORE":   "s3://bucket/strata?endpoint=http://minio:9000",
			"AWS_ACCESS_KEY_ID":     "id",
			"AWS_SECRET_ACCESS_KEY": "key",
		}
		for k, v := range want {
			if s.StringData[k] != v {
				t.Errorf("Secret %s: %s = %q, want %q", s.Name, k, s.StringData[k], v)
			}
		}
		if got := secretRefs(container(t, ss)); !slices.Equal(got, []string{s.Name}) {
			t.Errorf("brokers read Secrets %q, want [%s]", got, s.Name)
		}
		// Credentials belong in the Secret, never in the pod spec.
		for _, e := range container(t, ss).Env {
			if _, ok := want[e.Name]; ok {
				t.Errorf("%s is set in the pod spec", e.Name)
			}
		}
		// A changed Secret must change the pod template, or the brokers
		// keep the old settings until something else restarts them.
		other := mustRender(t, "secret.etcdEndpoints=etcd-9:2379").statefulSet(t)
		if ss.Spec.Template.Annotations["checksum/secret"] == other.Spec.Template.Annotations["checksum/secret"] {
			t.Error("the pod template does not change with the Secret")
		}
	})
	t.Run("existing Secret", func(t *testing.T) {
		r := mustRender(t, "secret.existingSecret=mine")
		if len(r.secrets) != 0 {
			t.Errorf("the chart made %d Secrets beside the existing one", len(r.secrets))
		}
		if got := secretRefs(container(t, r.statefulSet(t))); !slices.Equal(got, []string{"mine"}) {
			t.Errorf("brokers read Secrets %q, want [mine]", got)
		}
	})
	t.Run("no etcd", func(t *testing.T) {
		_, err := render(t)
		if err == nil || !strings.Contains(err.Error(), "secret.etcdEndpoints") {
			t.Errorf("rendered without etcd endpoints or a Secret; want an error naming secret.etcdEndpoints, got %v", err)
		}
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Errorf("helm did not run: %v", err)
		}
	})
}

func secretRefs(c *corev1.Container) []string {
	var names []string
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			names = append(names, ef.SecretRef.Name)
		}
	}
	return names
}
