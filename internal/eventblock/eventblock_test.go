package eventblock

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

func sample(n int) []airlock.Event {
	evs := make([]airlock.Event, n)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	prev := ""
	for i := range evs {
		h := strings.Repeat(string(rune('a'+i%6)), 64)
		evs[i] = airlock.Event{
			Seq: int64(41 + i), Time: t0.Add(time.Duration(i) * time.Microsecond),
			Actor: airlock.Actor{ID: "us_1", Name: "alice"}, Action: "db.query", Resource: "prod-db",
			GrantID: "gr_1", SessionID: "se_1", SourceAddr: "10.0.0.1:5555", Outcome: airlock.OutcomeSuccess,
			Details: json.RawMessage(`{"kind":"query","text":"SELECT 1"}`), PrevHash: prev, Hash: h,
		}
		prev = h
	}
	return evs
}

func TestRoundTrip(t *testing.T) {
	evs := sample(5)
	// The odd cases: no time, no details, empty (not nil) details, unicode,
	// negative seq.
	evs[1].Time = time.Time{}
	evs[2].Details = nil
	evs[3].Details = json.RawMessage{}
	evs[4].Actor.Name = "zoë \u2028"
	evs[4].Seq = -7
	// Hashes that are not lower-case hex are kept as text; a PrevHash that
	// does not link to the event before is stored.
	evs[2].Hash = strings.Repeat("A", 64)
	evs[3].PrevHash = strings.Repeat("0", 64)
	evs[4].PrevHash = "short"
	data := Append(nil, evs)
	got, err := Decode(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, evs)
	}
	// Decode appends.
	got, err = Decode(got[:1], data)
	if err != nil || len(got) != 6 || !reflect.DeepEqual(got[1:], evs) {
		t.Fatalf("append decode = %d events, %v", len(got), err)
	}
	if empty, err := Decode(nil, Append(nil, nil)); err != nil || len(empty) != 0 {
		t.Fatalf("empty block = %v, %v", empty, err)
	}
}

// TestDecodeDoesNotAliasInput checks the events do not change when the
// caller reuses the buffer it decoded from (database drivers do).
func TestDecodeDoesNotAliasInput(t *testing.T) {
	data := Append(nil, sample(3))
	got, err := Decode(nil, data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'X'
	}
	if !reflect.DeepEqual(got, sample(3)) {
		t.Fatal("decoded events changed with the input buffer")
	}
	// Details are capped: appending to one cannot overwrite the next field.
	d := got[0].Details
	_ = append(d, '!')
	if got[0].PrevHash != "" || got[1].Action != "db.query" {
		t.Fatal("appending to Details overwrote shared bytes")
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	good := Append(nil, sample(2))
	for name, data := range map[string][]byte{
		"empty":          nil,
		"no magic":       []byte("xyz1\x00"),
		"huge count":     append([]byte(magic), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"truncated":      good[:len(good)-5],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"bad flags":      append([]byte(magic+"\x01"), 0x80, 0, 0),
		"field too long": append([]byte(magic+"\x01\x00\x02"), 0xff, 0x01),
	} {
		dst := sample(1)
		if got, err := Decode(dst, data); !errors.Is(err, ErrCorrupt) || len(got) != 1 {
			t.Errorf("%s: Decode = %d events, %v; want dst unchanged and ErrCorrupt", name, len(got), err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Append(nil, sample(3)))
	f.Add(Append(nil, nil))
	f.Add([]byte(magic + "\x01\x03\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := Decode(nil, data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same events.
		again, err := Decode(nil, Append(nil, evs))
		if err != nil || !reflect.DeepEqual(again, evs) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	evs := sample(1000)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = Append(buf[:0], evs)
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(buf))/float64(len(evs)), "bytes/event")
}

func BenchmarkDecode(b *testing.B) {
	data := Append(nil, sample(1000))
	dst := make([]airlock.Event, 0, 1000)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = Decode(dst[:0], data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
