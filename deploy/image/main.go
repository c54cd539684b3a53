// Command image builds the broker's container image, without a container
// engine, as an OCI image layout archived in one tar file (an oci-archive,
// as `skopeo copy oci-archive:…` and `podman load` read it). `make image`
// runs it on a static Linux build of cmd/strata.
//
// The image has one layer and no base: the static binary, its data
// directory owned by the unprivileged user 65532, and /tmp. The binary
// carries its own root certificates (cmd/strata/roots.go), so it needs no
// files from a distribution. Every timestamp is fixed, so the same binary
// always gives the same image digest.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	binary := fs.String("binary", "", "the static linux strata binary to put in the image (required)")
	out := fs.String("out", "", "the OCI archive to write (required)")
	platform := fs.String("platform", "linux/amd64", "the binary's os/arch")
	ref := fs.String("tag", "strata:dev", "the name the archive gives the image (org.opencontainers.image.ref.name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *out == "" {
		return errors.New("--binary and --out are required")
	}
	osName, arch, ok := strings.Cut(*platform, "/")
	if !ok || osName != "linux" || arch == "" {
		return fmt.Errorf("--platform %q: want linux/<arch>", *platform)
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("reading the binary: %w", err)
	}
	img, err := brokerImage(bin, arch)
	if err != nil {
		return err
	}
	if err := writeArchive(*out, img, *ref); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	fmt.Printf("%s: %s %s\n", *out, *ref, d)
	return nil
}
