package topicconfig

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSASLSettings(t *testing.T) {
	s, err := SASLSettings(nil)
	if err != nil || fmt.Sprint(s.EnabledMechanisms) != "[SCRAM-SHA-512 SCRAM-SHA-256]" || s.MaxReauth != 0 ||
		s.FailedAuthenticationDelay != 100*time.Millisecond || s.MaxReceiveSize != 524288 {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
	s, err = SASLSettings(map[string]string{
		"sasl.enabled.mechanisms":                   "plain, SCRAM-SHA-256,PLAIN",
		"connections.max.reauth.ms":                 "60000",
		"connection.failed.authentication.delay.ms": "0",
		"sasl.server.max.receive.size":              "1024",
	})
	if err != nil || fmt.Sprint(s.EnabledMechanisms) != "[PLAIN SCRAM-SHA-256]" || s.MaxReauth != time.Minute ||
		s.FailedAuthenticationDelay != 0 || s.MaxReceiveSize != 1024 {
		t.Fatalf("set: %+v, %v", s, err)
	}
	for in, want := range map[string]string{
		"GSSAPI":       "GSSAPI (Kerberos) is not supported",
		"PLAIN,DIGEST": `unknown mechanism "DIGEST"`,
		" , ":          "at least one",
	} {
		if _, err := SASLSettings(map[string]string{"sasl.enabled.mechanisms": in}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	for _, kv := range [][2]string{{"connections.max.reauth.ms", "-1"}, {"connection.failed.authentication.delay.ms", "x"}, {"sasl.server.max.receive.size", "0"}} {
		if _, err := SASLSettings(map[string]string{kv[0]: kv[1]}); err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}
