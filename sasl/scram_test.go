package sasl

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// memStore is a CredentialStore over a map, keyed user then mechanism.
type memStore struct {
	mu    sync.Mutex
	creds map[string]map[string]ScramCredential
}

func (m *memStore) ScramCredential(_ context.Context, user, mechanism string) (ScramCredential, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.creds[user][mechanism]
	return c, ok, nil
}

func (m *memStore) add(t testing.TB, user, password, mechanism string, iterations int) {
	t.Helper()
	c, err := NewScramCredential(mechanism, password, iterations)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.creds == nil {
		m.creds = map[string]map[string]ScramCredential{}
	}
	if m.creds[user] == nil {
		m.creds[user] = map[string]ScramCredential{}
	}
	m.creds[user][mechanism] = c
}

// TestScramRFC7677 runs the exchange of RFC 7677 section 3, with its salt,
// iterations and server nonce, and expects its server messages exactly.
func TestScramRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	salted, err := SaltPassword(ScramSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := CredentialFromSalted(ScramSHA256, salt, salted, 4096)
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{creds: map[string]map[string]ScramCredential{"user": {ScramSHA256: cred}}}
	m, err := NewScram(ScramSHA256, store)
	if err != nil {
		t.Fatal(err)
	}
	m.nonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	s := m.Start()
	ctx := context.Background()
	out, done, err := s.Step(ctx, []byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil || done {
		t.Fatalf("first step: done %v, err %v", done, err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(out) != want {
		t.Fatalf("server-first-message %q, want %q", out, want)
	}
	out, done, err = s.Step(ctx, []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || !done {
		t.Fatalf("final step: done %v, err %v", done, err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(out) != want {
		t.Fatalf("server-final-message %q, want %q", out, want)
	}
	if got := s.Principal(); got != "User:user" {
		t.Fatalf("principal %q", got)
	}
}

// exchange runs a franz-go client mechanism against a server session.
func exchange(t *testing.T, client kgosasl.Mechanism, server Session) error {
	t.Helper()
	ctx := context.Background()
	cs, msg, err := client.Authenticate(ctx, "broker:9092")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		out, serverDone, err := server.Step(ctx, msg)
		if err != nil {
			return err
		}
		clientDone, next, err := cs.Challenge(out)
		if err != nil {
			t.Fatalf("client refused the server's message %q: %v", out, err)
		}
		if serverDone {
			if !clientDone {
				t.Fatal("server done, client not")
			}
			return nil
		}
		msg = next
	}
	t.Fatal("exchange did not end")
	return nil
}

func TestScramWithFranzGoClient(t *testing.T) {
	store := &memStore{}
	store.add(t, "alice", "s3cret", ScramSHA256, 4096)
	store.add(t, "bob,=x", "hunter2", ScramSHA512, 8192)
	for _, tc := range []struct {
		mech     string
		client   kgosasl.Mechanism
		ok       bool
		user     string
		scenario string
	}{
		{ScramSHA256, scram.Auth{User: "alice", Pass: "s3cret"}.AsSha256Mechanism(), true, "alice", "right password"},
		{ScramSHA256, scram.Auth{User: "alice", Pass: "wrong"}.AsSha256Mechanism(), false, "", "wrong password"},
		{ScramSHA512, scram.Auth{User: "alice", Pass: "s3cret"}.AsSha512Mechanism(), false, "", "no credential for the mechanism"},
		{ScramSHA512, scram.Auth{User: "nobody", Pass: "x"}.AsSha512Mechanism(), false, "", "unknown user"},
		{ScramSHA512, scram.Auth{User: "bob,=x", Pass: "hunter2"}.AsSha512Mechanism(), true, "bob,=x", "escaped name"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			m, err := NewScram(tc.mech, store)
			if err != nil {
				t.Fatal(err)
			}
			s := m.Start()
			err = exchange(t, tc.client, s)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := s.Principal(); got != "User:"+tc.user {
					t.Fatalf("principal %q", got)
				}
				return
			}
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("err %v, want ErrAuthentication", err)
			}
			// An unknown user and a wrong password are refused alike.
			if err.Error() != errInvalidCredentials.Error() {
				t.Fatalf("err %q, want %q", err, errInvalidCredentials)
			}
		})
	}
}

func TestScramRefusesMalformed(t *testing.T) {
	store := &memStore{}
	store.add(t, "alice", "s3cret", ScramSHA256, 4096)
	m, _ := NewScram(ScramSHA256, store)
	for _, first := range []string{
		"p=tls-unique,,n=alice,r=abc", // channel binding
		"n,a=bob,n=alice,r=abc",       // authzid of another user
		"n,,r=abc,n=alice",
		"n,,n=al=ice,r=abc",
		"n,,n=,r=abc",
		"n,,n=alice,r=",
		"x,,n=alice,r=abc",
		"",
		strings.Repeat("n", maxScramMessage+1),
	} {
		if _, _, err := m.Start().Step(context.Background(), []byte(first)); !errors.Is(err, ErrAuthentication) {
			t.Errorf("first message %q: err %v, want ErrAuthentication", first, err)
		}
	}
	// A final message with a nonce other than the server's.
	s := m.Start()
	if _, _, err := s.Step(context.Background(), []byte("n,,n=alice,r=abc")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Step(context.Background(), []byte("c=biws,r=abcdef,p=AAAA")); !errors.Is(err, ErrAuthentication) || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("wrong nonce: %v", err)
	}
	if _, _, err := s.Step(context.Background(), []byte("anything")); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("step after failure: %v", err)
	}
}

func TestPlain(t *testing.T) {
	store := &memStore{}
	store.add(t, "alice", "s3cret", ScramSHA512, 4096)
	store.add(t, "carol", "pw256", ScramSHA256, 4096)
	for _, tc := range []struct {
		msg  string
		user string
	}{
		{"\x00alice\x00s3cret", "alice"},
		{"alice\x00alice\x00s3cret", "alice"},
		{"\x00carol\x00pw256", "carol"},
		{"\x00alice\x00wrong", ""},
		{"bob\x00alice\x00s3cret", ""},
		{"\x00nobody\x00s3cret", ""},
		{"\x00alice", ""},
		{"\x00\x00", ""},
	} {
		s := NewPlain(store).Start()
		_, done, err := s.Step(context.Background(), []byte(tc.msg))
		if tc.user == "" {
			if done || !errors.Is(err, ErrAuthentication) {
				t.Errorf("%q: done %v err %v, want refused", tc.msg, done, err)
			}
			continue
		}
		if !done || err != nil || s.Principal() != "User:"+tc.user {
			t.Errorf("%q: done %v err %v principal %q", tc.msg, done, err, s.Principal())
		}
	}
	// franz-go's PLAIN client.
	s := NewPlain(store).Start()
	if err := exchange(t, plain.Auth{User: "alice", Pass: "s3cret"}.AsMechanism(), s); err != nil {
		t.Fatal(err)
	}
}

// FuzzScramExchange feeds a server session arbitrary client messages: it
// must refuse (with ErrAuthentication) or answer, never panic, and never
// end an exchange done without the right proof.
func FuzzScramExchange(f *testing.F) {
	f.Add([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=biws,r=rOprNGfwEbeRWgbNEkqOfixed,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add([]byte("y,a=user,n=user,r=x,ext=1"), []byte("c=eSxhPXVzZXIs,r=xfixed,p="))
	f.Add([]byte("n,,n=u=2C=3D,r=a"), []byte(",p=,p="))
	store := &memStore{}
	store.add(f, "user", "pencil", ScramSHA256, 4096)
	m, _ := NewScram(ScramSHA256, store)
	m.nonce = func() string { return "fixed" }
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s := m.Start()
		ctx := context.Background()
		if _, _, err := s.Step(ctx, first); err != nil {
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("first: %v", err)
			}
			return
		}
		_, done, err := s.Step(ctx, final)
		if err != nil && !errors.Is(err, ErrAuthentication) {
			t.Fatalf("final: %v", err)
		}
		if done {
			t.Fatalf("authenticated by a fuzzed proof: %q %q", first, final)
		}
	})
}

// TestScramLibrdkafkaNonce: librdkafka's final message repeats its own
// nonce before the server's whole nonce; Kafka accepts that, and so must
// this server, with the proof computed over the message as sent.
func TestScramLibrdkafkaNonce(t *testing.T) {
	store := &memStore{}
	store.add(t, "alice", "s3cret", ScramSHA512, 4096)
	m, _ := NewScram(ScramSHA512, store)
	s := m.Start()
	ctx := context.Background()
	first := "n=alice,r=cnonce"
	serverFirst, _, err := s.Step(ctx, []byte("n,,"+first))
	if err != nil {
		t.Fatal(err)
	}
	attrs := strings.Split(string(serverFirst), ",")
	salt, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(attrs[1], "s="))
	salted, _ := SaltPassword(ScramSHA512, "s3cret", salt, 4096)
	h, _ := ScramHash(ScramSHA512)
	clientKey := hmacOf(h, salted, []byte("Client Key"))
	withoutProof := "c=biws,r=cnonce" + strings.TrimPrefix(attrs[0], "r=")
	sig := hmacOf(h, hashOf(h, clientKey), []byte(first+","+string(serverFirst)+","+withoutProof))
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	_, done, err := s.Step(ctx, []byte(withoutProof+",p="+base64.StdEncoding.EncodeToString(proof)))
	if err != nil || !done {
		t.Fatalf("librdkafka's final message: done %v, err %v", done, err)
	}
}
