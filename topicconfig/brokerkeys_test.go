package topicconfig

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCheckBrokerKeys(t *testing.T) {
	ok := map[string]string{
		"log.retention.hours":       "1",    // a topic default
		"log.segment.min.bytes":     "1024", // read by the broker
		"group.max.size":            "5",
		"num.network.threads":       "3", // ignored on purpose
		"ssl.keystore.password":     "x",
		"auto.create.topics.enable": "true",
	}
	if err := CheckBrokerKeys(ok); err != nil {
		t.Fatalf("CheckBrokerKeys(%v) = %v", ok, err)
	}
	bad := map[string]string{
		"retention.ms":             "1", // a topic key
		"log.retention.msx":        "1",
		"log.dirs":                 "/var/lib/kafka",
		"sasl.jaas.config":         "secret",
		"listener.name.x.password": "secret",
	}
	err := CheckBrokerKeys(bad)
	if err == nil {
		t.Fatalf("CheckBrokerKeys(%v) = nil", bad)
	}
	want := []string{
		`unknown broker setting "listener.name.x.password"`,
		`unknown broker setting "log.dirs" (set by the flag --data-dir)`,
		`unknown broker setting "log.retention.msx" (did you mean log.retention.ms?)`,
		`unknown broker setting "retention.ms" (did you mean log.retention.ms?)`,
		`unknown broker setting "sasl.jaas.config"`,
	}
	if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("CheckBrokerKeys:\n got %q\nwant %q", got, want)
	}
	var ue *UnknownBrokerKeyError
	if !errors.As(err, &ue) {
		t.Errorf("%v is not an *UnknownBrokerKeyError", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the refusal shows a value: %v", err)
	}
}

func TestIsSensitiveBrokerKey(t *testing.T) {
	for _, k := range []string{
		"ssl.keystore.password", "ssl.key.password", "ssl.truststore.password",
		"listener.name.external.ssl.keystore.password", "sasl.jaas.config",
		"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config", "ssl.keystore.key",
		"ssl.keystore.certificate.chain", "ssl.truststore.certificates",
		"delegation.token.secret.key", "delegation.token.master.key", "password.encoder.secret",
	} {
		if !IsSensitiveBrokerKey(k) {
			t.Errorf("IsSensitiveBrokerKey(%q) = false", k)
		}
	}
	for _, k := range []string{"ssl.keystore.location", "ssl.keystore.type", "log.retention.ms", "num.io.threads"} {
		if IsSensitiveBrokerKey(k) {
			t.Errorf("IsSensitiveBrokerKey(%q) = true", k)
		}
	}
}

// settingKey is the shape of a Kafka broker setting's name.
var settingKey = regexp.MustCompile(`^[a-z]+(\.[a-z]+)+$`)

// TestEveryReadBrokerKeyIsAccepted reads the sources of the packages that
// read broker settings and finds the keys they read: a string literal
// indexing a settings map, passed to a reader helper, or declared as a
// reader's key constant. Each must pass CheckBrokerKeys, or a broker would
// refuse a setting it reads.
func TestEveryReadBrokerKeyIsAccepted(t *testing.T) {
	maps := []string{"b.cfg.Settings", "cfg.Settings", "brokerSettings", "s", "settings"}
	helpers := []string{"settingMs", "settingInt", "ms", "read", "positiveInt"}
	fset := token.NewFileSet()
	var files []string
	for _, dir := range []string{".", "../broker", "../broker/server", "../broker/kafkaapi", "../broker/grpcapi", "../broker/group"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	found := map[string]string{} // key: where
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		lit := func(e ast.Expr) {
			bl, ok := e.(*ast.BasicLit)
			if !ok || bl.Kind != token.STRING {
				return
			}
			if v, err := strconv.Unquote(bl.Value); err == nil && settingKey.MatchString(v) {
				found[v] = fset.Position(bl.Pos()).String()
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.IndexExpr:
				if slices.Contains(maps, exprString(n.X)) {
					lit(n.Index)
				}
			case *ast.CallExpr:
				if slices.Contains(helpers, exprString(n.Fun)) || strings.HasSuffix(exprString(n.Fun), ".settingInt") {
					for _, a := range n.Args {
						lit(a)
					}
				}
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if (name.Name == "key" || strings.HasSuffix(name.Name, "Key")) && i < len(n.Values) {
						lit(n.Values[i])
					}
				}
			}
			return true
		})
	}
	if len(found) < 30 {
		t.Fatalf("found only %d keys read (%v): the search no longer matches the readers", len(found), found)
	}
	for k, where := range found {
		if !IsBrokerKey(k) {
			t.Errorf("%s reads broker setting %q, which CheckBrokerKeys refuses: add it to brokerReadKeys", where, k)
		}
	}
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return ""
}
