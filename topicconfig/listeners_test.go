package topicconfig

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func TestKafkaListeners(t *testing.T) {
	got, err := KafkaListeners(map[string]string{
		"listeners":                      "internal://127.0.0.1:9093,EXTERNAL://:9092,PLAINTEXT://[::1]:0",
		"listener.security.protocol.map": "INTERNAL:PLAINTEXT, external:ssl,PLAINTEXT:PLAINTEXT",
		"advertised.listeners":           "EXTERNAL://broker1.example.com:19092",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []ListenerConfig{
		{Name: "INTERNAL", Protocol: "PLAINTEXT", Addr: "127.0.0.1:9093"},
		{Name: "EXTERNAL", Protocol: "SSL", Addr: ":9092", Advertised: "broker1.example.com:19092"},
		{Name: "PLAINTEXT", Protocol: "PLAINTEXT", Addr: "[::1]:0"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("KafkaListeners:\n got %+v\nwant %+v", got, want)
	}

	// Without a map, Kafka's default maps the protocols to themselves; the
	// SASL ones parse (whether they are served is the broker's decision).
	got, err = KafkaListeners(map[string]string{"listeners": "SSL://127.0.0.1:9093,SASL_SSL://127.0.0.1:9094"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Protocol != "SSL" || got[1].Protocol != "SASL_SSL" {
		t.Fatalf("default map: %+v", got)
	}

	if got, err := KafkaListeners(map[string]string{}); got != nil || err != nil {
		t.Fatalf("no listeners: %v, %v", got, err)
	}
}

func TestKafkaListenersErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		settings map[string]string
		want     string
	}{
		"unknown protocol": {map[string]string{
			"listeners": "A://127.0.0.1:1", "listener.security.protocol.map": "A:TLS",
		}, `listener A: unknown security protocol "TLS"`},
		"name missing from the map": {map[string]string{
			"listeners": "INTERNAL://127.0.0.1:1", "listener.security.protocol.map": "EXTERNAL:SSL",
		}, "listener INTERNAL has no security protocol: add it to listener.security.protocol.map"},
		"name missing from the default map": {map[string]string{
			"listeners": "INTERNAL://127.0.0.1:1",
		}, "listener INTERNAL has no security protocol"},
		"duplicate name": {map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:1,plaintext://127.0.0.1:2",
		}, "listener PLAINTEXT is named twice"},
		"duplicate port": {map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9092",
		}, "listeners PLAINTEXT and SSL both use port 9092"},
		"advertised without listener": {map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:1", "advertised.listeners": "SSL://h:2",
		}, "listener SSL is not in listeners"},
		"advertised without listeners": {map[string]string{
			"advertised.listeners": "SSL://h:2",
		}, "advertised.listeners is set without listeners"},
		"advertised unspecified": {map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:1", "advertised.listeners": "PLAINTEXT://0.0.0.0:1",
		}, "clients cannot connect to"},
		"no scheme":   {map[string]string{"listeners": "127.0.0.1:9092"}, "want NAME://host:port"},
		"bad port":    {map[string]string{"listeners": "PLAINTEXT://h:x"}, `bad port "x"`},
		"dotted name": {map[string]string{"listeners": "A.B://127.0.0.1:1"}, "a listener name is letters"},
		"override of no listener": {map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:1", "listener.name.external.ssl.keystore.location": "/k.pem",
		}, "listener.name.external.ssl.keystore.location: the broker has no listener named EXTERNAL"},
	} {
		_, err := KafkaListeners(tc.settings)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: KafkaListeners(%v) = %v, want an error containing %q", name, tc.settings, err, tc.want)
		}
	}
}

func TestListenerSSLOverridesKeyByKey(t *testing.T) {
	s := map[string]string{
		"ssl.keystore.location":                              "/shared.pem",
		"ssl.truststore.location":                            "/ca.pem",
		"listener.name.external.ssl.keystore.location":       "/external.pem",
		"listener.name.external.ssl.client.auth":             "required",
		"listener.name.internal.ssl.truststore.location":     "/internal-ca.pem",
		"listener.name.external.ssl.principal.mapping.rules": "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
	}
	ext, err := ListenerSSL(s, "EXTERNAL")
	if err != nil {
		t.Fatal(err)
	}
	const subject = "CN=Alice,OU=ops"
	if name, err := ext.PrincipalMapper.Name(subject); err != nil || name != "alice" {
		t.Errorf("EXTERNAL maps %s to %q (%v), want its own rule's alice", subject, name, err)
	}
	ext.PrincipalMapper = nil
	if want := (SSL{KeystoreLocation: "/external.pem", TruststoreLocation: "/ca.pem", ClientAuth: tls.RequireAndVerifyClientCert}); ext != want {
		t.Errorf("EXTERNAL: %+v, want %+v", ext, want)
	}
	in, err := ListenerSSL(s, "INTERNAL")
	if err != nil {
		t.Fatal(err)
	}
	if name, err := in.PrincipalMapper.Name(subject); err != nil || name != subject {
		t.Errorf("INTERNAL maps %s to %q (%v), want it whole (DEFAULT)", subject, name, err)
	}
	in.PrincipalMapper = nil
	if want := (SSL{KeystoreLocation: "/shared.pem", TruststoreLocation: "/internal-ca.pem"}); in != want {
		t.Errorf("INTERNAL: %+v, want %+v", in, want)
	}
	if _, err := ListenerSSL(map[string]string{"listener.name.x.ssl.keystore.password": "hunter2"}, "X"); err == nil ||
		strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a listener's keystore password: %v, want a refusal without the value", err)
	}
}

func TestListenerKeysAccepted(t *testing.T) {
	for _, k := range []string{"listeners", "advertised.listeners", "listener.security.protocol.map",
		"listener.name.external.ssl.keystore.location", "listener.name.INTERNAL_1.ssl.client.auth"} {
		if !IsBrokerKey(k) {
			t.Errorf("IsBrokerKey(%q) = false", k)
		}
	}
	for _, k := range []string{"listener.name.external.ssl.keystore.locatio", "listener.name.ssl.keystore.location", "listener.name.a.b.ssl.client.auth"} {
		if IsBrokerKey(k) {
			t.Errorf("IsBrokerKey(%q) = true", k)
		}
	}
}
