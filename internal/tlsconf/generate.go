package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Generated are the files Generate writes (or found): PEM, the key and the
// certificate (chain) in one file, as Kafka's PEM keystore.
type Generated struct {
	CA     string // the CA certificate: the trust store of servers and clients
	Server string // the broker's key and certificate, signed by the CA
	Client string // a client's key and certificate, signed by the CA
}

// generatedValidity is long: the certificates are for a development broker,
// which should not stop working in the middle of an experiment.
const generatedValidity = 10 * 365 * 24 * time.Hour

// Generate makes a CA, a server certificate for the loopback names
// (localhost, 127.0.0.1, ::1) and a client certificate in dir, with ECDSA
// P-256 keys. Files already there are reused, so clients configured with
// the CA keep working across restarts; if any is missing all are made
// anew. The CA's private key is kept in dir, readable by its owner only.
func Generate(dir string) (Generated, error) {
	g := Generated{
		CA:     filepath.Join(dir, "ca.pem"),
		Server: filepath.Join(dir, "server.pem"),
		Client: filepath.Join(dir, "client.pem"),
	}
	caKeyPath := filepath.Join(dir, "ca-key.pem")
	all := true
	for _, p := range []string{g.CA, caKeyPath, g.Server, g.Client} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			all = false
		} else if err != nil {
			return Generated{}, err
		}
	}
	if all {
		return g, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Generated{}, err
	}
	now := time.Now().Add(-time.Hour) // tolerate clocks a little behind
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Generated{}, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Strata development CA"},
		NotBefore:             now,
		NotAfter:              now.Add(generatedValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Generated{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Generated{}, err
	}
	// The server certificate is also a client certificate: brokers present
	// it when they dial each other.
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "strata-broker"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "strata-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	files := map[string][]byte{
		g.CA:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		caKeyPath: nil,
	}
	if files[caKeyPath], err = keyPEM(caKey); err != nil {
		return Generated{}, err
	}
	for path, tmpl := range map[string]*x509.Certificate{g.Server: server, g.Client: client} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Generated{}, err
		}
		tmpl.NotBefore, tmpl.NotAfter = now, now.Add(generatedValidity)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := sign(tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return Generated{}, err
		}
		kp, err := keyPEM(key)
		if err != nil {
			return Generated{}, err
		}
		files[path] = append(kp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	for path, data := range files {
		if err := writeFileAtomic(path, data); err != nil {
			return Generated{}, err
		}
	}
	return g, nil
}

func sign(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, priv *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFileAtomic writes through a temporary file and a rename, so a
// broker reloading the file never reads half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
