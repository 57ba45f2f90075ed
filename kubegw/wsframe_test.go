package kubegw

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// frame builds one WebSocket frame.
func frame(fin bool, op byte, payload []byte, mask []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var mbit byte
	if mask != nil {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n < 1<<16:
		out = append(out, mbit|126, 0, 0)
		binary.BigEndian.PutUint16(out[2:], uint16(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask != nil {
		out = append(out, mask...)
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	return append(out, p...)
}

type got map[byte]*bytes.Buffer

func (g got) on(ch byte, p []byte) {
	if g[ch] == nil {
		g[ch] = &bytes.Buffer{}
	}
	g[ch].Write(p)
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	mid := bytes.Repeat([]byte("y"), 300)
	mask := []byte{1, 2, 3, 4}
	var stream []byte
	stream = append(stream, frame(true, 2, append([]byte{1}, "hello "...), nil)...)
	stream = append(stream, frame(true, 9, []byte("ping"), nil)...) // control, ignored
	stream = append(stream, frame(false, 2, append([]byte{2}, "err-"...), mask)...)
	stream = append(stream, frame(true, 10, nil, mask)...) // a pong inside a fragmented message
	stream = append(stream, frame(true, 0, []byte("more"), mask)...)
	stream = append(stream, frame(true, 2, append([]byte{1}, mid...), nil)...)
	stream = append(stream, frame(true, 2, append([]byte{1}, big...), nil)...)
	stream = append(stream, frame(true, 2, []byte{3}, nil)...) // channel byte only
	stream = append(stream, frame(true, 2, append([]byte{3}, `{"status":"Success"}`...), nil)...)
	for _, step := range []int{1, 2, 3, 7, 64, 1 << 20} {
		g := got{}
		f := newFrameReader(g.on)
		for i := 0; i < len(stream); i += step {
			f.feed(stream[i:min(i+step, len(stream))])
		}
		if f.err != "" {
			t.Fatalf("step %d: %s", step, f.err)
		}
		if want := "hello " + string(mid) + string(big); g[1].String() != want {
			t.Errorf("step %d: stdout %d bytes, want %d", step, g[1].Len(), len(want))
		}
		if g[2].String() != "err-more" {
			t.Errorf("step %d: stderr %q", step, g[2])
		}
		if g[3].String() != `{"status":"Success"}` {
			t.Errorf("step %d: error channel %q", step, g[3])
		}
		if c, ok := exitCode(g[3].Bytes()); !ok || c != 0 {
			t.Errorf("exit code %d %v", c, ok)
		}
	}
	f := newFrameReader(got{}.on)
	f.feed(frame(true, 1, []byte("text"), nil))
	if f.err == "" {
		t.Error("a text frame was followed")
	}
	f = newFrameReader(got{}.on)
	f.feed(frame(true, 0, []byte("x"), nil))
	if f.err == "" {
		t.Error("a continuation outside a message was followed")
	}
}

func TestExitCode(t *testing.T) {
	st := `{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`
	if c, ok := exitCode([]byte(st)); !ok || c != 3 {
		t.Fatalf("exit code %d %v", c, ok)
	}
	if _, ok := exitCode([]byte("{")); ok {
		t.Fatal("garbage has an exit code")
	}
}

// FuzzFrameReader: any bytes in any chunking never panic, and the data
// delivered never exceeds what was fed.
func FuzzFrameReader(f *testing.F) {
	f.Add(frame(true, 2, []byte{1, 'h', 'i'}, nil), uint8(1))
	f.Add(frame(false, 2, []byte{0, 'a'}, []byte{9, 8, 7, 6}), uint8(3))
	f.Add(append(frame(true, 8, nil, nil), frame(true, 2, []byte{4, '{', '}'}, nil)...), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		for _, oneFrame := range []bool{false, true} { // the cluster's side, the client's
			n := 0
			fr := newFrameReader(func(_ byte, p []byte) { n += len(p) })
			fr.oneFrameMessages = oneFrame
			s := int(step) + 1
			for i := 0; i < len(b); i += s {
				fr.feed(b[i:min(i+s, len(b))])
			}
			if n > len(b) {
				t.Fatalf("delivered %d bytes from %d", n, len(b))
			}
		}
		exitCode(b)
	})
}
