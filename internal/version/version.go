// Package version reports which build of Strata is running: the version and
// the source revision, for `strata version`, `--version` and metrics.
//
// Both come from the build information the Go toolchain embeds (the module
// version of a tagged build, the VCS revision of a build in a checkout). A
// release build may set them instead with
//
//	-ldflags "-X github.com/strata-broker/strata/internal/version.version=v1.2.3
//	          -X github.com/strata-broker/strata/internal/version.revision=abc123"
package version

import (
	"fmt"
	"runtime/debug"
)

// Set only by the linker (-X); empty means "from the build information".
var (
	version  string
	revision string
)

// Unknown stands for a value the build did not record.
const Unknown = "unknown"

// Info describes a build.
type Info struct {
	// Version is the module version (v1.2.3, or a pseudo-version of a
	// checkout), "(devel)" for a build without one.
	Version string
	// Revision is the source revision (a commit hash), Unknown when the
	// build did not record it.
	Revision string
	// Modified is true when the build's checkout had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, version, revision)
}

// fromBuildInfo merges bi (nil when the binary carries none) with the
// values set at link time, which win.
func fromBuildInfo(bi *debug.BuildInfo, linkVersion, linkRevision string) Info {
	info := Info{Version: Unknown, Revision: Unknown, GoVersion: Unknown}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if linkVersion != "" {
		info.Version = linkVersion
	}
	if linkRevision != "" {
		info.Revision = linkRevision
		info.Modified = false
	}
	return info
}

// String is the one line `strata version` prints.
func (i Info) String() string {
	rev := i.Revision
	if i.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("strata %s, revision %s, built with %s", i.Version, rev, i.GoVersion)
}
