package pgproxy

import (
	"strconv"

	"github.com/airlockhq/airlock/internal/jsonenc"
)

// Per-statement audit details are encoded by hand: json.Marshal's
// reflection was the largest non-syscall cost of the statement path. The
// output is byte for byte what json.Marshal produces for the same value
// (TestQueryDetailsJSON and FuzzQueryDetailsJSON compare them); strings go
// through jsonenc.AppendString.

// queryJSON is the input of appendQueryDetails: the details of a db.query
// event, with the statement text as bytes or string, so that a simple
// Query's text is encoded straight from the read buffer without a copy.
type queryJSON[S string | []byte] struct {
	kind        string
	stmt        int64
	parseStmt   int64
	name        S
	portal      S
	functionOID uint32
	text        S
	truncated   bool
	textBytes   int
	sha256      string
	params      []*string
}

// appendQueryDetails appends the JSON object of a db.query event's
// details, as json.Marshal would encode the equivalent struct (see
// queryDetails in details_test.go).
func appendQueryDetails[S string | []byte](b []byte, d *queryJSON[S]) []byte {
	b = append(b, `{"kind":`...)
	b = jsonenc.AppendString(b, d.kind)
	b = append(b, `,"stmt":`...)
	b = strconv.AppendInt(b, d.stmt, 10)
	if d.parseStmt != 0 {
		b = append(b, `,"parse_stmt":`...)
		b = strconv.AppendInt(b, d.parseStmt, 10)
	}
	if len(d.name) > 0 {
		b = append(b, `,"name":`...)
		b = jsonenc.AppendString(b, d.name)
	}
	if len(d.portal) > 0 {
		b = append(b, `,"portal":`...)
		b = jsonenc.AppendString(b, d.portal)
	}
	if d.functionOID != 0 {
		b = append(b, `,"function_oid":`...)
		b = strconv.AppendUint(b, uint64(d.functionOID), 10)
	}
	if len(d.text) > 0 {
		b = append(b, `,"text":`...)
		b = jsonenc.AppendString(b, d.text)
	}
	if d.truncated {
		b = append(b, `,"truncated":true`...)
	}
	if d.textBytes != 0 {
		b = append(b, `,"text_bytes":`...)
		b = strconv.AppendInt(b, int64(d.textBytes), 10)
	}
	if d.sha256 != "" {
		b = append(b, `,"statement_sha256":`...)
		b = jsonenc.AppendString(b, d.sha256)
	}
	if len(d.params) > 0 {
		b = append(b, `,"params":[`...)
		for i, p := range d.params {
			if i > 0 {
				b = append(b, ',')
			}
			if p == nil {
				b = append(b, "null"...)
			} else {
				b = jsonenc.AppendString(b, *p)
			}
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// detailsSize estimates the encoded size of d, for one allocation.
func detailsSize[S string | []byte](d *queryJSON[S]) int {
	n := 96 + len(d.name) + len(d.portal) + len(d.text) + len(d.sha256)
	n += len(d.text) / 8 // some escaping
	for _, p := range d.params {
		n += 3
		if p != nil {
			n += len(*p) + len(*p)/8
		}
	}
	return n
}
