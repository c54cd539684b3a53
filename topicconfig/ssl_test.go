package topicconfig

import (
	"crypto/tls"
	"testing"
)

func TestParseKafkaListener(t *testing.T) {
	for in, want := range map[string][2]string{
		"127.0.0.1:9092":           {ProtocolPlaintext, "127.0.0.1:9092"},
		"SSL://127.0.0.1:9092":     {ProtocolSSL, "127.0.0.1:9092"},
		"plaintext://0.0.0.0:9092": {ProtocolPlaintext, "0.0.0.0:9092"},
		"SASL_SSL://h:1":           {ProtocolSASLSSL, "h:1"},
		"sasl_plaintext://h:1":     {ProtocolSASLPlaintext, "h:1"},
	} {
		p, a, err := ParseKafkaListener(in)
		if err != nil || p != want[0] || a != want[1] {
			t.Errorf("%s: got %s %s %v; want %v", in, p, a, err, want)
		}
	}
	for _, in := range []string{"SASL://h:1", "HTTPS://h:1"} {
		if _, _, err := ParseKafkaListener(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestSSLSettings(t *testing.T) {
	s, err := GRPCSSL(map[string]string{"grpc.ssl.keystore.location": "k.pem", "grpc.ssl.truststore.location": "ca.pem", "grpc.ssl.client.auth": "required",
		"ssl.keystore.location": "other.pem"})
	if err != nil || s.KeystoreLocation != "k.pem" || s.TruststoreLocation != "ca.pem" || s.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("GRPCSSL: %+v, %v", s, err)
	}
	for _, bad := range []map[string]string{
		{"ssl.keystore.location": "k", "ssl.keystore.type": "JKS"},
		{"ssl.keystore.location": "k", "ssl.key.password": "x"},
		{"ssl.keystore.location": "k", "ssl.client.auth": "required"},
		{"ssl.keystore.location": "k", "ssl.client.auth": "always"},
		{"ssl.truststore.location": "ca"},
	} {
		if _, err := KafkaSSL(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
