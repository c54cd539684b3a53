package oauthbearer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MaxKeyFileBytes bounds a JWKS or public key file: a real JWKS holds a
// few keys of a few hundred bytes each.
const MaxKeyFileBytes = 1 << 20

// minRSABits is the smallest RSA modulus accepted; RFC 7518 §3.3 requires
// 2048 bits for RS*.
const minRSABits = 2048

// key is one verification key.
type key struct {
	kid string
	alg string // the JWK's alg, "" when it does not name one
	pub crypto.PublicKey
}

// keySet is the keys of a JWKS file, or the single key of a PEM file.
type keySet struct {
	keys []key
}

// jwk is the part of a JSON Web Key (RFC 7517) a verifier reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA (RFC 7518 §6.3.1).
	N string `json:"n"`
	E string `json:"e"`
	// EC (RFC 7518 §6.2.1).
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JSON Web Key Set. Keys that cannot verify signatures
// here (encryption keys, symmetric keys, unknown types) are skipped, as
// Kafka's resolver skips them; a set left with no key is an error, since
// it could verify nothing.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	var set keySet
	var skipped []string
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		set.keys = append(set.keys, key{kid: k.Kid, alg: k.Alg, pub: pub})
	}
	if len(set.keys) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("no usable signing key: %s", strings.Join(skipped, "; "))
		}
		return nil, errors.New("no signing key")
	}
	return &set, nil
}

func (k *jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64Int(k.N)
		if err != nil {
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := b64Int(k.E)
		if err != nil {
			return nil, fmt.Errorf("e: %w", err)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("e: not a usable RSA exponent")
		}
		pub := &rsa.PublicKey{N: n, E: int(e.Int64())}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, fewer than %d", pub.N.BitLen(), minRSABits)
		}
		return pub, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %q (P-256, P-384 or P-521)", k.Crv)
		}
		x, err := b64Int(k.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := b64Int(k.Y)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		// Building the key through its uncompressed encoding has the
		// standard library check that the point is on the curve.
		size := (curve.Params().BitSize + 7) / 8
		if len(x.Bytes()) > size || len(y.Bytes()) > size {
			return nil, errors.New("coordinates larger than the curve")
		}
		enc := make([]byte, 1+2*size)
		enc[0] = 4
		x.FillBytes(enc[1 : 1+size])
		y.FillBytes(enc[1+size:])
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, enc)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pub, nil
	case "":
		return nil, errors.New("no kty")
	default:
		return nil, fmt.Errorf("key type %q cannot verify signatures here (RSA or EC)", k.Kty)
	}
}

func b64Int(s string) (*big.Int, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64url: %w", err)
	}
	return new(big.Int).SetBytes(b), nil
}

// parsePublicKeyPEM reads an issuer's public key from PEM: a PUBLIC KEY
// block (PKIX) or a CERTIFICATE whose key is used.
func parsePublicKeyPEM(data []byte) (*keySet, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM PUBLIC KEY or CERTIFICATE block")
		}
		var pub crypto.PublicKey
		switch block.Type {
		case "PUBLIC KEY":
			p, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("public key: %w", err)
			}
			pub = p
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate: %w", err)
			}
			pub = c.PublicKey
		default:
			continue
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if p.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("RSA key of %d bits, fewer than %d", p.N.BitLen(), minRSABits)
			}
		case *ecdsa.PublicKey:
		default:
			return nil, fmt.Errorf("key of type %T (RSA or EC)", pub)
		}
		return &keySet{keys: []key{{pub: pub}}}, nil
	}
}
