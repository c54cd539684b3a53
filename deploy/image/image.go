package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	binaryPath = "/usr/local/bin/strata"
	dataDir    = "/var/lib/strata"
	// nonroot is the user the broker runs as, the Dockerfile's too, so
	// volumes prepared for one image fit the other.
	nonroot = 65532
)

// epoch is every timestamp in the image: a fixed one makes the digest a
// function of the binary alone.
var epoch = time.Unix(0, 0).UTC()

// brokerImage is the image of one strata binary for linux/arch.
func brokerImage(binary []byte, arch string) (v1.Image, error) {
	layerTar, err := rootfs(binary)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config = v1.Config{
		Entrypoint: []string{binaryPath},
		// As the Dockerfile: a single-process broker by default, listening
		// on every interface; `broker …` as the command runs a cluster member.
		Cmd: []string{"dev", "--data-dir", dataDir,
			"--kafka-addr", "0.0.0.0:9092", "--grpc-addr", "0.0.0.0:9093", "--http-addr", "0.0.0.0:9094"},
		User:         fmt.Sprintf("%d:%d", nonroot, nonroot),
		WorkingDir:   dataDir,
		Env:          []string{"PATH=/usr/local/bin"},
		ExposedPorts: map[string]struct{}{"9092/tcp": {}, "9093/tcp": {}, "9094/tcp": {}},
		Volumes:      map[string]struct{}{dataDir: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "strata",
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return img, nil
}

// rootfs is the layer's tar: parent directories before their entries, as
// some extractors need.
func rootfs(binary []byte) ([]byte, error) {
	type entry struct {
		name     string
		mode     int64
		uid      int
		contents []byte
		dir      bool
	}
	entries := []entry{
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: binaryPath[1:], mode: 0o755, contents: binary},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: dataDir[1:] + "/", mode: 0o750, uid: nonroot, dir: true},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.contents))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.contents); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeArchive writes img, named ref, as an OCI image layout in a tar file
// at path (replaced only once complete).
func writeArchive(path string, img v1.Image, ref string) error {
	dir, err := os.MkdirTemp("", "strata-image-")
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	if err := lp.WriteImage(img); err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	// The library fills artifactType with the config's media type; the OCI
	// spec keeps that field for artifacts, and this is an image.
	desc.ArtifactType = ""
	desc.Annotations = map[string]string{"org.opencontainers.image.ref.name": ref}
	if err := lp.AppendDescriptor(*desc); err != nil {
		return fmt.Errorf("oci layout: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("oci archive: %w", err)
	}
	defer os.Remove(tmp) // after a successful rename, a no-op
	if err := tarDir(f, dir); err != nil {
		f.Close()
		return fmt.Errorf("oci archive %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("oci archive %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("oci archive: %w", err)
	}
	return nil
}

// tarDir archives the files under dir in name order with fixed metadata, so
// the archive, like the image, depends only on its contents.
func tarDir(w io.Writer, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	tw := tar.NewWriter(w)
	for _, p := range names {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if err := copyFile(tw, p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
