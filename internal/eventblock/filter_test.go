package eventblock

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
)

// randomBlock returns n events with values drawn from small sets, so that
// consecutive events often share strings and hashes link (the encoding's
// flagSame and flagPrevLinked), with the odd cases mixed in: no time, nil
// and empty details, hashes that are not lower-case hex, a PrevHash that
// does not link, seqs that do not ascend.
func randomBlock(rng *rand.Rand, n int) []airlock.Event {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	hash := func() string {
		var raw [32]byte
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		switch rng.IntN(8) {
		case 0:
			return strings.ToUpper(hex.EncodeToString(raw[:]))
		case 1:
			return "h" + strconv.Itoa(rng.IntN(100))
		case 2:
			return ""
		}
		return hex.EncodeToString(raw[:])
	}
	evs := make([]airlock.Event, n)
	seq := rng.Int64N(1000) - 10
	micro := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixMicro()
	prev := ""
	for i := range evs {
		e := &evs[i]
		if rng.IntN(20) == 0 {
			seq += rng.Int64N(7) - 3
		} else {
			seq++
		}
		e.Seq = seq
		if rng.IntN(10) != 0 {
			micro += rng.Int64N(2000) - 100
			e.Time = time.UnixMicro(micro).UTC()
		}
		e.Actor = airlock.Actor{ID: pick("us_1", "us_2", ""), Name: pick("alice", "bob", "zoë \u2028")}
		e.Action = pick("db.query", "db.connect", "grant.create", "ssh.exec")
		e.Resource = pick("prod-db", "web", "")
		e.RequestID = pick("", "rq_"+strconv.Itoa(i/3))
		e.GrantID = pick("gr_1", "gr_2", "")
		e.SessionID = pick("se_1", "se_2", "")
		e.SourceAddr = pick("10.0.0.1:5555", "")
		e.Outcome = pick(airlock.OutcomeSuccess, "failure")
		switch rng.IntN(4) {
		case 0:
		case 1:
			e.Details = json.RawMessage{}
		default:
			e.Details = json.RawMessage(`{"n":` + strconv.Itoa(rng.IntN(1000)) + `}`)
		}
		e.PrevHash = prev
		if rng.IntN(10) == 0 {
			e.PrevHash = hash()
		}
		e.Hash = hash()
		prev = e.Hash
	}
	return evs
}

// randomFilter returns a filter over the values randomBlock uses.
func randomFilter(rng *rand.Rand, evs []airlock.Event) airlock.EventFilter {
	var f airlock.EventFilter
	if len(evs) > 0 && rng.IntN(2) == 0 {
		f.AfterSeq = evs[rng.IntN(len(evs))].Seq - rng.Int64N(3)
	}
	if rng.IntN(2) == 0 {
		f.Limit = rng.IntN(5)
	} else {
		f.Limit = rng.IntN(len(evs) + 2)
	}
	if len(evs) > 0 && rng.IntN(6) == 0 {
		f.Since = evs[rng.IntN(len(evs))].Time
	}
	if len(evs) > 0 && rng.IntN(6) == 0 {
		f.Until = evs[rng.IntN(len(evs))].Time
	}
	switch rng.IntN(8) {
	case 0:
		f.Action = "db.*"
	case 1:
		f.Action = "grant.create"
	}
	if rng.IntN(6) == 0 {
		f.GrantID = "gr_2"
	}
	if rng.IntN(6) == 0 {
		f.SessionID = "se_1"
	}
	if rng.IntN(8) == 0 {
		f.ActorName = "bob"
	}
	if rng.IntN(8) == 0 {
		f.Resource = "web"
	}
	return f
}

// checkDecodeFilter checks DecodeFilter against decoding the whole block
// and filtering it, for data Decode accepts.
func checkDecodeFilter(t *testing.T, data []byte, f airlock.EventFilter) {
	t.Helper()
	all, err := Decode(nil, data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	// Both append to what out already holds, and count it towards the
	// limit (FilterBlocks carries out from block to block).
	want, wantFull := Filter(sample(1), all, &f)
	got, full, err := DecodeFilter(sample(1), data, &f)
	if err != nil {
		t.Fatalf("DecodeFilter(%+v): %v", f, err)
	}
	if full != wantFull || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeFilter(%+v) = %d events (full %v), want %d (full %v)\n got %+v\nwant %+v", f, len(got), full, len(want), wantFull, got, want)
	}
	// The events are their own: the input can be reused.
	for i := range data {
		data[i] ^= 0xff
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeFilter(%+v): events changed with the input buffer", f)
	}
	for i := range data {
		data[i] ^= 0xff
	}
	for i := 1; i < len(got); i++ {
		if d := got[i].Details; d != nil && cap(d) != len(d) {
			t.Fatalf("event %d: details not capacity-capped", i)
		}
	}
}

func TestDecodeFilterMatchesDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 1))
	for range 3000 {
		evs := randomBlock(rng, rng.IntN(60))
		data := Append(nil, evs)
		for range 4 {
			checkDecodeFilter(t, data, randomFilter(rng, evs))
		}
	}
	// A full-size block, read for one event anywhere in it (what a proof
	// does), and for all of it.
	evs := randomBlock(rng, 1024)
	data := Append(nil, evs)
	for _, i := range []int{0, 1, 511, 1022, 1023} {
		checkDecodeFilter(t, data, airlock.EventFilter{AfterSeq: evs[i].Seq - 1, Limit: 1})
	}
	checkDecodeFilter(t, data, airlock.EventFilter{})
	checkDecodeFilter(t, Append(nil, sample(5)), airlock.EventFilter{AfterSeq: 43, Limit: 1})
	checkDecodeFilter(t, Append(nil, nil), airlock.EventFilter{Limit: 1})
}

// TestDecodeFilterCorpus compares the two decoders on the blocks kept as
// the fuzz corpus in testdata.
func TestDecodeFilterCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/*/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, name := range files {
		text, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// go test fuzz v1, one []byte("...") line.
		line := strings.TrimSpace(strings.SplitN(string(text), "\n", 2)[1])
		q, ok := strings.CutPrefix(line, "[]byte(")
		if !ok {
			t.Fatalf("%s: not a []byte entry", name)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		compareOnCorpus(t, []byte(s))
	}
}

func compareOnCorpus(t *testing.T, data []byte) {
	t.Helper()
	_, err := Decode(nil, data)
	_, _, ferr := DecodeFilter(nil, data, &airlock.EventFilter{})
	if (err == nil) != (ferr == nil) || ferr != nil && !errors.Is(ferr, ErrCorrupt) {
		t.Fatalf("Decode: %v; DecodeFilter of the whole block: %v", err, ferr)
	}
	if err == nil {
		checkDecodeFilter(t, data, airlock.EventFilter{})
		checkDecodeFilter(t, data, airlock.EventFilter{Limit: 1})
	}
}

func TestDecodeFilterRejectsCorrupt(t *testing.T) {
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
		if got, full, err := DecodeFilter(dst, data, &airlock.EventFilter{}); !errors.Is(err, ErrCorrupt) || len(got) != 1 || full {
			t.Errorf("%s: DecodeFilter = %d events, %v; want dst unchanged and ErrCorrupt", name, len(got), err)
		}
	}
	// Damage in the part a read needs is caught even when it stops early;
	// a stored block's error names where it is.
	bad := Append(nil, sample(3))
	bad = bad[:len(bad)-40] // into the last event
	f := airlock.EventFilter{AfterSeq: 42, Limit: 1}
	var ce *airlock.CorruptEventsError
	if _, _, err := FilterStored(nil, 41, bad, &f); !errors.As(err, &ce) || ce.After != 40 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FilterStored of a truncated block = %v", err)
	}
	// Damage past the events read is not looked at.
	f.AfterSeq = 0
	if got, full, err := FilterStored(nil, 41, bad, &f); err != nil || !full || len(got) != 1 || got[0].Seq != 41 {
		t.Fatalf("FilterStored of the first event of a block damaged at its end = %d events, %v, %v", len(got), full, err)
	}
}

func FuzzDecodeFilter(f *testing.F) {
	f.Add(Append(nil, sample(3)), int64(42), 1, "")
	f.Add(Append(nil, nil), int64(0), 0, "")
	f.Add(Append(nil, randomBlock(rand.New(rand.NewPCG(1, 2)), 20)), int64(5), 3, "db.*")
	f.Add([]byte(magic+"\x01\x03\x02"), int64(0), 1, "x")
	f.Fuzz(func(t *testing.T, data []byte, afterSeq int64, limit int, action string) {
		filter := airlock.EventFilter{AfterSeq: afterSeq, Limit: limit, Action: action}
		all, err := Decode(nil, data)
		got, full, ferr := DecodeFilter(nil, data, &filter)
		if ferr != nil {
			if !errors.Is(ferr, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", ferr)
			}
			if err == nil {
				t.Fatalf("DecodeFilter refused a block Decode takes: %v", ferr)
			}
			if len(got) != 0 || full {
				t.Fatal("events returned with an error")
			}
			return
		}
		if err != nil {
			// Only damage past the events read may go unnoticed: then
			// the read stopped at its limit.
			if !full {
				t.Fatalf("DecodeFilter read the whole block Decode refuses (%v)", err)
			}
			return
		}
		want, wantFull := Filter(nil, all, &filter)
		if full != wantFull || len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeFilter = %d events (full %v), Decode+Filter %d (full %v)", len(got), full, len(want), wantFull)
		}
	})
}

func BenchmarkDecodeFilterOne(b *testing.B) {
	evs := randomBlock(rand.New(rand.NewPCG(7, 7)), 1024)
	data := Append(nil, evs)
	for _, c := range []struct {
		name string
		f    airlock.EventFilter
	}{
		{"first", airlock.EventFilter{Limit: 1}},
		{"middle", airlock.EventFilter{AfterSeq: evs[511].Seq, Limit: 1}},
		{"last", airlock.EventFilter{AfterSeq: evs[1022].Seq, Limit: 1}},
		{"all", airlock.EventFilter{}},
	} {
		b.Run(c.name+"/filter", func(b *testing.B) {
			b.ReportAllocs()
			var out []airlock.Event
			for b.Loop() {
				var err error
				if out, _, err = DecodeFilter(out[:0], data, &c.f); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			var out, blk []airlock.Event
			for b.Loop() {
				var err error
				if blk, err = Decode(blk[:0], data); err != nil {
					b.Fatal(err)
				}
				out, _ = Filter(out[:0], blk, &c.f)
			}
		})
	}
}
