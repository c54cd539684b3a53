package kafkaapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The worst requests for memory are built here, for every array and every
// tagged-field section of every version of every API served:
//
//   - an array count as large as kmsg lets through, followed by filler:
//     kmsg checks a count only against a lower bound of its elements' size
//     on the wire and allocates the whole array before reading them;
//   - a tagged-field section of distinct unknown tags, each kept in a map;
//   - a valid request whose array at that place is as long as the frame
//     allows, every string in it distinct, so that the answer, which grows
//     with what is asked about, is as large as it gets.
//
// TestRequestMemoryBound measures what decoding and answering each
// allocates, against a core that answers at once, and holds each API to
// what its requests are charged (amplification, or Produce's cost).

// hostileFrameBytes is the size of the frames built. A request's charge is
// linear in its size; what it allocates is too, beyond a constant that
// smallRequestBytes covers.
const hostileFrameBytes = 16 << 10

// fieldPath leads from a request to one of its slices (or, with tags set,
// to a struct's tagged fields): a field index per level, each slice on the
// way holding one element.
type fieldPath struct {
	fields []int
	tags   bool
}

// fieldPaths lists the paths to every slice of structs, numbers or strings,
// and to every struct's tagged fields, below t (a struct type).
func fieldPaths(t reflect.Type, prefix []int) []fieldPath {
	var out []fieldPath
	if _, ok := t.FieldByName("UnknownTags"); ok {
		out = append(out, fieldPath{fields: prefix, tags: true})
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() == reflect.Uint8 {
			continue
		}
		path := append(append([]int(nil), prefix...), i)
		out = append(out, fieldPath{fields: path})
		if f.Type.Elem().Kind() == reflect.Struct {
			out = append(out, fieldPaths(f.Type.Elem(), path)...)
		}
	}
	return out
}

// names hands out distinct short strings.
type names struct{ next int }

func (n *names) name() string {
	n.next++
	return strconv.FormatInt(int64(n.next), 36)
}

// newElem is a slice element with kmsg's defaults, and with distinct
// strings when n is not nil.
func newElem(t reflect.Type, n *names) reflect.Value {
	v := reflect.New(t)
	if d, ok := v.Interface().(interface{ Default() }); ok {
		d.Default()
	}
	e := v.Elem()
	if n == nil {
		return e
	}
	switch {
	case t.Kind() == reflect.String:
		e.SetString(n.name())
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			f := e.Field(i)
			switch {
			case f.Kind() == reflect.String:
				f.SetString(n.name())
			case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.String:
				s := n.name()
				f.Set(reflect.ValueOf(&s))
			}
		}
	}
	return e
}

// withCount returns the request of key at version with count elements (or
// count unknown tags) at the end of path and one in every slice on the way.
func withCount(key, version int16, p fieldPath, count int, n *names) kmsg.Request {
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	v := reflect.ValueOf(req).Elem()
	for i, f := range p.fields {
		field := v.Field(f)
		last := i == len(p.fields)-1 && !p.tags
		c := 1
		if last {
			c = count
		}
		s := reflect.MakeSlice(field.Type(), 0, c)
		for range c {
			s = reflect.Append(s, newElem(field.Type().Elem(), n))
		}
		field.Set(s)
		if last {
			break
		}
		v = field.Index(0)
	}
	if p.tags {
		tags := v.FieldByName("UnknownTags").Addr().Interface().(*kmsg.Tags)
		for i := range count {
			tags.Set(uint32(tagBase+i), nil)
		}
	}
	return req
}

// tagBase is the first unknown tag number used: far above the tags kmsg
// knows, so that each is kept as unknown.
const tagBase = 1000

// hostileBodies calls try with request bodies of about size bytes that push
// the array or tag section at path as far as kmsg lets them. try reports
// whether a body was decoded and answered. An array's counts go down from
// the largest, and stop at the first that is answered: a larger one fails
// to decode (after allocating the array, if kmsg let the count through),
// and a smaller one costs less.
func hostileBodies(key, version int16, flexible bool, p fieldPath, size int, try func(body []byte) bool) {
	one := withCount(key, version, p, 1, nil).AppendTo(nil)
	two := withCount(key, version, p, 2, nil).AppendTo(nil)
	if bytes.Equal(one, two) {
		return // not encoded at this version
	}
	d := 0
	for d < len(one) && d < len(two) && one[d] == two[d] {
		d++
	}
	pos := d // a compact count or a tag count differs in its only byte
	if !flexible && !p.tags {
		pos = d - 3 // an int32 count differs in its last byte
	}
	if pos < 0 {
		return
	}
	prefix := one[:pos]
	rest := size - len(prefix) - 5
	if p.tags {
		b := append([]byte(nil), prefix...)
		n := rest / 3 // a two-byte tag number and an empty value each
		b = binary.AppendUvarint(b, uint64(n))
		for i := range n {
			b = binary.AppendUvarint(b, uint64(tagBase+i))
			b = append(b, 0)
		}
		try(b)
		return
	}
	fills := []byte{0}
	if flexible {
		// 0 is a null string in a flexible version, 1 an empty one (which
		// allocates).
		fills = append(fills, 1)
	}
	for _, fill := range fills {
		filler := bytes.Repeat([]byte{fill}, rest)
		for k := 1; k <= 64; k++ {
			count := rest / k
			b := append([]byte(nil), prefix...)
			if flexible {
				b = binary.AppendUvarint(b, uint64(count+1))
			} else {
				b = binary.BigEndian.AppendUint32(b, uint32(count))
			}
			if try(append(b, filler...)) {
				break
			}
		}
	}
	// A valid request as long as size allows, every string distinct.
	one = withCount(key, version, p, 1, &names{}).AppendTo(nil)
	ten := withCount(key, version, p, 11, &names{}).AppendTo(nil)
	per := max((len(ten)-len(one))/10, 1)
	try(withCount(key, version, p, 1+(size-len(one))/per, &names{}).AppendTo(nil))
}

// requestFrame is a whole frame (without its length prefix) for body.
func requestFrame(key, version int16, flexible bool, body []byte) []byte {
	f := binary.BigEndian.AppendUint16(nil, uint16(key))
	f = binary.BigEndian.AppendUint16(f, uint16(version))
	f = binary.BigEndian.AppendUint32(f, 1)
	f = binary.BigEndian.AppendUint16(f, 1)
	f = append(f, 'x')
	if flexible {
		f = append(f, 0)
	}
	return append(f, body...)
}

// chargeAndAllocated serves frame as a connection does after reading it,
// and returns what the request was charged (its frame included) and what
// serving it allocated: the cost walk, decoding, answering against a core
// that answers at once, and encoding the response.
func chargeAndAllocated(s *Server, a *api, frame []byte) (charge int64, allocated uint64, answered bool) {
	charge = a.charge(int32(len(frame)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h, req, body, err := parseHeader(frame)
	if err == nil && a.cost != nil {
		need, cerr := a.cost(h.version, body)
		charge = max(charge, int64(len(frame))+need)
		err = cerr
	}
	if err == nil {
		var resp kmsg.Response
		if resp, err = s.answer(context.Background(), h, req, body); err == nil && resp != nil {
			resp.AppendTo(nil)
		}
	}
	runtime.ReadMemStats(&after)
	return charge, after.TotalAlloc - before.TotalAlloc, err == nil
}

// A request's memory is reserved before its body is read, so what it is
// charged must cover what decoding and answering it can allocate, however
// it is built. This holds every API served to its amplification (Produce to
// its cost) for the worst requests hostileBodies can build.
func TestRequestMemoryBound(t *testing.T) {
	s := New(nullCore{}, Config{NodeID: 1, AutoCreateTopics: true, Groups: nullGroups{}, ShareGroups: nullShareGroups{}})
	for i := range s.apis {
		a := &s.apis[i]
		t.Run(kmsg.NameForKey(a.key), func(t *testing.T) {
			req := kmsg.RequestForKey(a.key)
			paths := fieldPaths(reflect.TypeOf(req).Elem(), nil)
			var worst float64
			var worstAt string
			for v := a.min; v <= a.max; v++ {
				req.SetVersion(v)
				flexible := req.IsFlexible()
				for _, p := range paths {
					hostileBodies(a.key, v, flexible, p, hostileFrameBytes, func(body []byte) bool {
						frame := requestFrame(a.key, v, flexible, body)
						charge, got, answered := chargeAndAllocated(s, a, frame)
						took := int64(got) + int64(len(frame))
						if r := float64(took-smallRequestBytes) / float64(len(frame)); r > worst {
							worst, worstAt = r, fmt.Sprintf("v%d, fields %v (tags %v)", v, p.fields, p.tags)
						}
						if took > charge+smallRequestBytes {
							t.Errorf("v%d, fields %v (tags %v): a %d-byte request took %d bytes, charged %d", v, p.fields, p.tags, len(frame), took, charge)
						}
						return answered
					})
				}
			}
			t.Logf("worst: %.1f bytes per byte of frame beyond the small-request allowance, at %s", worst, worstAt)
		})
	}
}
