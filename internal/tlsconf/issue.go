package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// IssueClient makes another client certificate with the CA that Generate
// made in dir: a key and certificate for the subject CN=commonName, whose
// principal is "User:CN=<commonName>", written to <commonName>.pem in dir.
// It is for trying principals and ACLs on a development broker (and for
// tests), not a CA to run. Issuing a name again replaces its key.
func IssueClient(dir, commonName string) (string, error) {
	if commonName == "" || filepath.Base(commonName) != commonName {
		return "", fmt.Errorf("client certificate name %q: want a plain name", commonName)
	}
	ca, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return "", fmt.Errorf("the CA of %s: %w", dir, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("the CA of %s: %w", dir, err)
	}
	caKey, ok := ca.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return "", errors.New("the CA key is not the ECDSA key Generate makes")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	now := time.Now().Add(-time.Hour)
	der, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		NotBefore:   now,
		NotAfter:    now.Add(generatedValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, commonName+".pem")
	if err := writeFileAtomic(path, append(kp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)); err != nil {
		return "", err
	}
	return path, nil
}
