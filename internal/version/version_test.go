package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/strata-broker/strata", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, c := range []struct {
		name           string
		bi             *debug.BuildInfo
		linkV, linkRev string
		want           Info
	}{
		{"build info", bi, "", "", Info{Version: "v0.3.0", Revision: "0123abcd", Modified: true, GoVersion: "go1.26.8"}},
		{"link time wins", bi, "v1.0.0", "feedbeef", Info{Version: "v1.0.0", Revision: "feedbeef", GoVersion: "go1.26.8"}},
		{"no build info", nil, "", "", Info{Version: Unknown, Revision: Unknown, GoVersion: Unknown}},
	} {
		if got := fromBuildInfo(c.bi, c.linkV, c.linkRev); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "v0.3.0", Revision: "0123abcd", Modified: true, GoVersion: "go1.26.8"}
	if got, want := i.String(), "strata v0.3.0, revision 0123abcd (modified), built with go1.26.8"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// A test binary carries build information of its own.
	if g := Get(); g.GoVersion == Unknown || !strings.HasPrefix(g.GoVersion, "go") {
		t.Errorf("Get() = %+v: want the toolchain's version", g)
	}
}
