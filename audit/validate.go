package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/airlockhq/airlock"
)

// Limits on what one event may carry.
const (
	// MaxActionLen is the longest accepted Action.
	MaxActionLen = 128
	// MaxDetailsLen is the largest accepted Details object, in bytes.
	MaxDetailsLen = 1 << 20
)

// validAction reports whether a is dotted lower case: two or more segments
// of [a-z0-9_-] separated by single dots, starting with a letter.
func validAction(a string) bool {
	if len(a) == 0 || len(a) > MaxActionLen || a[0] < 'a' || a[0] > 'z' {
		return false
	}
	dots, segLen := 0, 0
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case c == '.':
			if segLen == 0 {
				return false
			}
			dots++
			segLen = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			segLen++
		default:
			return false
		}
	}
	return dots > 0 && segLen > 0
}

// cleanString makes s storable on every engine and exactly reproducible
// through JSON: invalid UTF-8 and NUL become U+FFFD.
func cleanString(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// compactBufs recycles the buffers prepare compacts details into.
var compactBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// prepare validates e and returns it normalised for appending: strings
// cleaned, Details compacted, Seq/Time/PrevHash/Hash cleared.
func prepare(e airlock.Event) (airlock.Event, error) {
	if !validAction(e.Action) {
		return e, airlock.Errorf(airlock.EINVALID, "audit: action %q must be dotted lower case, like \"grant.created\"", cleanString(truncate(e.Action, 64)))
	}
	switch e.Outcome {
	case airlock.OutcomeSuccess, airlock.OutcomeFailure, airlock.OutcomeDenied:
	default:
		return e, airlock.Errorf(airlock.EINVALID, "audit: outcome %q must be success, failure or denied", cleanString(truncate(e.Outcome, 64)))
	}
	if len(e.Details) > 0 {
		if len(e.Details) > MaxDetailsLen {
			return e, airlock.Errorf(airlock.ETOOLARGE, "audit: details of %s are %d bytes, over the %d limit", e.Action, len(e.Details), MaxDetailsLen)
		}
		d := e.Details
		// Most details come from json.Marshal or an appender and are
		// compact already: checking is cheaper than compacting.
		if !isCompact(d) || !json.Valid(d) {
			buf := compactBufs.Get().(*bytes.Buffer)
			defer compactBufs.Put(buf)
			buf.Reset()
			if err := json.Compact(buf, e.Details); err != nil {
				return e, airlock.WrapError(airlock.EINVALID, "audit: details of "+e.Action+" are not valid JSON", err)
			}
			d = buf.Bytes()
		}
		if d[0] != '{' {
			return e, airlock.Errorf(airlock.EINVALID, "audit: details of %s must be a JSON object", e.Action)
		}
		// Always a copy: the caller may reuse its buffer once Submit returns.
		if !utf8.Valid(d) || bytes.IndexByte(d, 0) >= 0 {
			d = []byte(cleanString(string(d)))
		} else {
			d = bytes.Clone(d)
		}
		e.Details = d
	} else {
		e.Details = nil
	}
	e.Actor.ID = cleanString(e.Actor.ID)
	e.Actor.Name = cleanString(e.Actor.Name)
	e.Resource = cleanString(e.Resource)
	e.RequestID = cleanString(e.RequestID)
	e.GrantID = cleanString(e.GrantID)
	e.SessionID = cleanString(e.SessionID)
	e.SourceAddr = cleanString(e.SourceAddr)
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	return e, nil
}

// isCompact reports whether b has no whitespace outside JSON strings, that
// is whether json.Compact would return it unchanged (if it is valid JSON).
func isCompact(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if in {
			switch c {
			case '\\':
				i++
			case '"':
				in = false
			}
			continue
		}
		switch c {
		case '"':
			in = true
		case ' ', '\t', '\n', '\r':
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
