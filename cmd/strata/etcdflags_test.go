package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEtcdPasswordSources: the password of --etcd-user comes from
// --etcd-password-file (its line ending dropped) or STRATA_ETCD_PASSWORD,
// not both, never without a user, and a user needs one.
func TestEtcdPasswordSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		user, file string
		env        *string
		want       string // the password, or the error's text
		wantErr    bool
	}{
		{name: "file", user: "strata", file: file, want: "from-file"},
		{name: "environment", user: "strata", env: ptr("from-env"), want: "from-env"},
		{name: "both", user: "strata", file: file, env: ptr("from-env"), want: "are both set", wantErr: true},
		{name: "user without password", user: "strata", want: "has no password", wantErr: true},
		{name: "password without user", file: file, want: "without --etcd-user", wantErr: true},
		{name: "neither", want: ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != nil {
				t.Setenv(etcdPasswordEnv, *c.env)
			} else {
				t.Setenv(etcdPasswordEnv, "")
				os.Unsetenv(etcdPasswordEnv)
			}
			f := &brokerFlags{etcdUser: c.user, etcdPasswordFile: c.file}
			_, user, pw, err := f.etcdSecurity()
			switch {
			case c.wantErr && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err %v, want one saying %q", err, c.want)
			case c.wantErr:
				if strings.Contains(err.Error(), "from-file") || strings.Contains(err.Error(), "from-env") {
					t.Errorf("the error shows the password: %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case string(pw) != c.want || user != c.user:
				t.Fatalf("user %q password %q, want %q %q", user, string(pw), c.user, c.want)
			}
			if c.want != "" && !c.wantErr {
				if s := fmt.Sprintf("%v %+v %#v %s", pw, pw, pw, pw); strings.Contains(s, c.want) {
					t.Errorf("the password prints: %s", s)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }
