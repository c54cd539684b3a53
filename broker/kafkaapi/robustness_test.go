package kafkaapi_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the protocol by hand, to send what no client library would.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, nc: nc}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func frame(req kmsg.Request, version int16, correlationID int32) []byte {
	req.SetVersion(version)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, correlationID)
}

// read returns the next response's correlation id and body.
func (c *rawConn) read() (int32, []byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.nc, body); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:], nil
}

// expectClosed checks that the broker closed the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.read(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("connection still open (read: %v), want it closed by the broker", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// apiVersions asks ApiVersions v0 and checks the answer, proving the broker
// serves this connection.
func (c *rawConn) apiVersions(correlationID int32) *kmsg.ApiVersionsResponse {
	c.t.Helper()
	c.write(frame(kmsg.NewPtrApiVersionsRequest(), 0, correlationID))
	id, body, err := c.read()
	if err != nil {
		c.t.Fatalf("ApiVersions: %v", err)
	}
	if id != correlationID {
		c.t.Fatalf("response correlation id %d, want %d", id, correlationID)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	addr, _ := startBroker(t, map[string]string{"socket.request.max.bytes": "65536"})
	bystander := dialRaw(t, addr)
	bystander.apiVersions(1)

	header := func(key, version int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 7)
		return binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	}
	withLength := func(b []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	}
	cases := map[string]func(c *rawConn){
		"unknown API key": func(c *rawConn) { c.write(withLength(header(9999, 0))) },
		"unsupported version": func(c *rawConn) {
			c.write(withLength(append(header(3, 99), 0, 0, 0, 0)))
		},
		"truncated frame": func(c *rawConn) {
			c.write(binary.BigEndian.AppendUint32(nil, 100))
			c.write(header(3, 1))
			c.nc.(*net.TCPConn).CloseWrite()
		},
		"absurd length prefix": func(c *rawConn) { c.write([]byte{0x7f, 0xff, 0xff, 0xff}) },
		"negative length":      func(c *rawConn) { c.write([]byte{0xff, 0xff, 0xff, 0xf0}) },
		"over socket.request.max.bytes": func(c *rawConn) {
			c.write(withLength(append(header(0, 7), make([]byte, 70000)...)))
		},
		"garbage body": func(c *rawConn) {
			c.write(withLength(append(header(3, 1), 0x7f, 0xff, 0xff, 0xff, 1, 2)))
		},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, addr)
			send(c)
			c.expectClosed()
			bystander.apiVersions(2)
		})
	}
}

func TestApiVersionsFromANewerClient(t *testing.T) {
	addr, _ := startBroker(t, nil)
	c := dialRaw(t, addr)
	// A version above ours: the answer is v0-shaped, says UNSUPPORTED_VERSION
	// and lists what we speak, so the client can retry lower.
	req := kmsg.NewPtrApiVersionsRequest()
	f := frame(req, 3, 5)
	binary.BigEndian.PutUint16(f[6:], 42) // version 42
	c.write(f)
	id, body, err := c.read()
	if err != nil || id != 5 {
		t.Fatalf("read: id %d, %v", id, err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("response is not v0: %v", err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("response: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	// The connection stays usable.
	c.apiVersions(6)
}

// kafka-python sends ApiVersions and Metadata back to back on one
// connection; answers come back in request order, and an acks=0 produce
// gets none.
func TestPipelinedRequestsAnswerInOrder(t *testing.T) {
	addr, _ := startBroker(t, nil)
	c := dialRaw(t, addr)
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks = 0
	tp := kmsg.NewProduceRequestTopic()
	tp.Topic = "fire-and-forget"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = encodeBatch(t, -1, -1, -1, "x")
	tp.Partitions = append(tp.Partitions, pp)
	produce.Topics = append(produce.Topics, tp)

	var out []byte
	out = append(out, frame(kmsg.NewPtrApiVersionsRequest(), 0, 1)...)
	out = append(out, frame(kmsg.NewPtrMetadataRequest(), 0, 2)...)
	out = append(out, frame(produce, 7, 3)...)
	out = append(out, frame(kmsg.NewPtrMetadataRequest(), 1, 4)...)
	c.write(out)
	for _, want := range []int32{1, 2, 4} {
		id, _, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if id != want {
			t.Fatalf("response for correlation id %d, want %d", id, want)
		}
	}
}
