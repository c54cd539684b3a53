package grpcapi

import (
	"bytes"
	"testing"

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
