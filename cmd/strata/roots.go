package main

// The broker image has no operating system files, so no CA bundle: this
// embeds Mozilla's root certificates for TLS to S3 and etcd, used only when
// the system offers none (a host's own bundle still wins).
import _ "golang.org/x/crypto/x509roots/fallback"
