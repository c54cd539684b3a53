package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestArchiveIsAnOCILayoutOfTheBrokerImage writes an archive, unpacks it as
// an image tool would and reads the image back through the layout.
func TestArchiveIsAnOCILayoutOfTheBrokerImage(t *testing.T) {
	bin := []byte("\x7fELF not really a broker")
	out := filepath.Join(t.TempDir(), "strata.tar")
	img, err := brokerImage(bin, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(out, img, "strata:test"); err != nil {
		t.Fatal(err)
	}
	dir := untar(t, out)
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatalf("archive has no oci-layout file: %v", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != "strata:test" {
		t.Errorf("ref name = %q, want strata:test", got)
	}
	if desc.ArtifactType != "" {
		t.Errorf("index marks the image as an artifact of type %s", desc.ArtifactType)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type = %s, want %s", desc.MediaType, types.OCIManifestSchema1)
	}
	got, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Every blob present and matching its digest and size.
	if err := validate.Image(got); err != nil {
		t.Fatalf("image in the archive: %v", err)
	}

	cfg, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "arm64" {
		t.Errorf("platform = %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{binaryPath}) {
		t.Errorf("entrypoint = %q", cfg.Config.Entrypoint)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532 (never root)", cfg.Config.User)
	}
	for _, p := range []string{"9092/tcp", "9093/tcp", "9094/tcp"} {
		if _, ok := cfg.Config.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed", p)
		}
	}

	files := layerFiles(t, got)
	b := files[binaryPath[1:]]
	switch {
	case b == nil:
		t.Fatalf("no %s in the layer; have %v", binaryPath, keys(files))
	case !bytes.Equal(b.contents, bin):
		t.Errorf("%s differs from the binary given", binaryPath)
	case b.mode&0o111 == 0:
		t.Errorf("%s mode %o: not executable", binaryPath, b.mode)
	}
	// The broker, as user 65532, must be able to write its data directory
	// when no volume is mounted over it.
	d := files[dataDir[1:]+"/"]
	switch {
	case d == nil:
		t.Fatalf("no %s in the layer", dataDir)
	case d.uid != nonroot || d.mode&0o700 != 0o700:
		t.Errorf("%s: uid %d mode %o, want owned and writable by %d", dataDir, d.uid, d.mode, nonroot)
	}
}

// TestImageDigestDependsOnlyOnTheBinary guards the fixed timestamps: two
// builds of one binary are the same image, a different binary is not.
func TestImageDigestDependsOnlyOnTheBinary(t *testing.T) {
	digest := func(bin string) v1.Hash {
		t.Helper()
		img, err := brokerImage([]byte(bin), "amd64")
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, again, b := digest("one"), digest("one"), digest("two")
	if a != again {
		t.Errorf("same binary, different digests: %s and %s", a, again)
	}
	if a == b {
		t.Errorf("different binaries, one digest %s", a)
	}
}

func TestRunRefusesANonLinuxPlatform(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "strata")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	if err := run([]string{"--binary", bin, "--out", out, "--platform", "darwin/arm64"}); err == nil {
		t.Fatal("darwin/arm64 accepted")
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an archive was written after the refusal: %v", err)
	}
}

type file struct {
	mode     int64
	uid      int
	contents []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]*file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := make(map[string]*file)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = &file{mode: h.Mode, uid: h.Uid, contents: b}
	}
}

func untar(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func keys(m map[string]*file) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
