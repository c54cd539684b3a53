package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/strata-broker/strata/internal/version"
)

func TestVersion(t *testing.T) {
	out := mustStrata(t, "", "version")
	if want := version.Get().String() + "\n"; out != want || !strings.HasPrefix(out, "strata ") {
		t.Errorf("version: %q, want %q", out, want)
	}
	if flag := mustStrata(t, "", "--version"); flag != out {
		t.Errorf("--version: %q, want what version prints, %q", flag, out)
	}
	var v versionJSON
	if err := json.Unmarshal([]byte(mustStrata(t, "", "version", "-o", "json")), &v); err != nil || v.GoVersion != version.Get().GoVersion {
		t.Errorf("version -o json: %+v, %v", v, err)
	}
}
