package oauthbearer

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
)

// FuzzClientResponse feeds arbitrary initial responses to the parser and
// to a session: neither may panic, a parsed response must encode back to
// one that parses the same, and a session may end done only with a
// principal.
func FuzzClientResponse(f *testing.F) {
	f.Add([]byte(clientResponse("", unsigned(`{"sub":"admin","exp":99999999999}`))))
	f.Add([]byte(clientResponse("admin", unsigned(`{"sub":"admin","exp":99999999999}`), "traceId=x y")))
	f.Add([]byte("n,a=a=2Cb,\x01auth=Bearer a.b.c\x01k=v\x01\x01"))
	f.Add([]byte("y,,\x01\x01"))
	f.Add([]byte{1})
	v, err := NewValidator(context.Background(), Config{Unsecured: true}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	m := NewMechanism(v)
	f.Fuzz(func(t *testing.T, in []byte) {
		s := m.Start()
		if _, done, err := s.Step(context.Background(), in); done && (err != nil || s.Principal() == "") {
			t.Fatalf("done with error %v, principal %q", err, s.Principal())
		}
		r, err := ParseClientResponse(in)
		if err != nil {
			return
		}
		if !validToken(r.Token) {
			t.Fatalf("parsed token %q is not of token characters", r.Token)
		}
		var b strings.Builder
		b.WriteString("n,")
		if r.AuthzID != "" {
			b.WriteString("a=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(r.AuthzID))
		}
		b.WriteString(",\x01auth=Bearer " + r.Token + "\x01")
		for _, k := range slices.Sorted(maps.Keys(r.Extensions)) {
			b.WriteString(k + "=" + r.Extensions[k] + "\x01")
		}
		b.WriteString("\x01")
		again, err := ParseClientResponse([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", b.String(), err)
		}
		if again.AuthzID != r.AuthzID || again.Token != r.Token || !maps.Equal(again.Extensions, r.Extensions) {
			t.Fatalf("re-encoded %+v parses as %+v", r, again)
		}
	})
}
