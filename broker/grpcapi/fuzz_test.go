package grpcapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-broker/strata/api/strata/v1"
)

// FuzzUnmarshalProduce checks that the codec decodes any input as
// proto.Unmarshal does: the same error or none, and then an equal message.
// The seeds are the shapes and edge cases of codec_test.go.
func FuzzUnmarshalProduce(f *testing.F) {
	for _, req := range produceShapes() {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range produceEdgeCases() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		unmarshalBoth(t, b)
	})
}

// FuzzMarshalFetchResponse checks that the codec encodes any FetchResponse
// to proto.Marshal's bytes. Messages come from decoding the input, so they
// carry whatever proto accepts, unknown fields included.
func FuzzMarshalFetchResponse(f *testing.F) {
	for _, resp := range fetchShapes() {
		b, err := proto.Marshal(resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := &stratav1.FetchResponse{}
		if proto.Unmarshal(b, resp) != nil {
			return
		}
		want, wantErr := proto.Marshal(resp)
		data, err := codec{}.Marshal(resp)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("input %x: proto: %v; codec: %v", b, wantErr, err)
		}
		if err == nil && !bytes.Equal(data.Materialize(), want) {
			t.Fatalf("input %x:\ncodec: %x\nproto: %x", b, data.Materialize(), want)
		}
	})
}

// FuzzUnmarshalReplicaFetch checks that the replica client decodes any
// input as proto.Unmarshal does. The seeds are the shapes and edge cases of
// replicawire_test.go.
func FuzzUnmarshalReplicaFetch(f *testing.F) {
	for _, resp := range replicaFetchShapes() {
		b, err := proto.Marshal(resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range replicaFetchEdgeCases() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var recv []byte
		receiveBoth(t, b, &recv)
	})
}

// FuzzMarshalReplicaFetchResponse checks that the codec encodes any
// ReplicaFetchResponse to proto.Marshal's bytes.
func FuzzMarshalReplicaFetchResponse(f *testing.F) {
	for _, resp := range replicaFetchShapes() {
		b, err := proto.Marshal(resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := &stratav1.ReplicaFetchResponse{}
		if proto.Unmarshal(b, resp) != nil {
			return
		}
		want, wantErr := proto.Marshal(resp)
		data, err := codec{}.Marshal(resp)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("input %x: proto: %v; codec: %v", b, wantErr, err)
		}
		if err == nil && !bytes.Equal(data.Materialize(), want) {
			t.Fatalf("input %x:\ncodec: %x\nproto: %x", b, data.Materialize(), want)
		}
	})
}

// fuzzPasswords accepts alice's password only.
type fuzzPasswords struct{}

func (fuzzPasswords) VerifyPassword(_ context.Context, user, password string) (string, error) {
	if user == "alice" && password == "s3cret" {
		return "User:alice", nil
	}
	return "", errors.New("refused")
}

// fuzzTokens accepts the token "good" only, for an hour.
type fuzzTokens struct{}

func (fuzzTokens) Validate(_ context.Context, token string) (string, time.Time, error) {
	if token == "good" {
		return "User:dave", time.Now().Add(time.Hour), nil
	}
	return "", time.Time{}, errors.New("refused")
}

// FuzzAuthorization: whatever a client puts in the authorization metadata,
// verifying it neither panics nor names a principal unless it carries
// exactly a credential the verifiers accept; a refusal is UNAUTHENTICATED.
func FuzzAuthorization(f *testing.F) {
	basic := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	for _, seed := range []string{"Basic " + basic, "basic  " + basic + " ", "Bearer good", "Bearer bad", "Basic", "Basic !!!",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("alice")), "Negotiate x", "", " ", "Bearer"} {
		f.Add(seed)
	}
	a := &authenticator{passwords: fuzzPasswords{}, tokens: fuzzTokens{}, now: time.Now}
	f.Fuzz(func(t *testing.T, authorization string) {
		principal, err := a.verify(context.Background(), authorization)
		if err != nil {
			if status.Code(err) != codes.Unauthenticated || principal != "" {
				t.Fatalf("%q: %q, %v; want UNAUTHENTICATED and no principal", authorization, principal, err)
			}
			return
		}
		scheme, cred, _ := strings.Cut(authorization, " ")
		cred = strings.TrimSpace(cred)
		switch {
		case strings.EqualFold(scheme, "Bearer") && cred == "good" && principal == "User:dave":
		case strings.EqualFold(scheme, "Basic") && principal == "User:alice":
			if raw, err := base64.StdEncoding.DecodeString(cred); err != nil || string(raw) != "alice:s3cret" {
				t.Fatalf("%q accepted as alice", authorization)
			}
		default:
			t.Fatalf("%q accepted as %q", authorization, principal)
		}
	})
}
