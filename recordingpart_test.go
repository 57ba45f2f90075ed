package airlock

import "testing"

// TestRecordingPart: part 0 is the session's only recording; with several
// the caller must choose; parts count from 1 and do not run past the end.
func TestRecordingPart(t *testing.T) {
	ssh := &Session{ID: "ss_s", Recording: "rec/ss_s", RecordingSHA256: "h"}
	one := &Session{ID: "ss_1", Recordings: []SessionRecording{{ID: "ss_1-1", SHA256: "a"}}}
	two := &Session{ID: "ss_2", Recordings: []SessionRecording{{ID: "ss_2-1", SHA256: "a"}, {ID: "ss_2-2", SHA256: "b"}}}
	none := &Session{ID: "ss_0"}
	for _, c := range []struct {
		s        *Session
		part     int
		key, sha string
		errCode  string
	}{
		{ssh, 0, "rec/ss_s", "h", ""},
		{ssh, 1, "", "", ENOTFOUND},
		{one, 0, "ss_1-1", "a", ""},
		{one, 1, "ss_1-1", "a", ""},
		{two, 0, "", "", EINVALID},
		{two, 2, "ss_2-2", "b", ""},
		{two, 3, "", "", ENOTFOUND},
		{two, -1, "", "", EINVALID},
		{none, 0, "", "", ENOTFOUND},
	} {
		key, sha, err := c.s.RecordingPart(c.part)
		if key != c.key || sha != c.sha || ErrorCode(err) != c.errCode && !(c.errCode == "" && err == nil) {
			t.Errorf("%s part %d = %q, %q, %v; want %q, %q, code %q", c.s.ID, c.part, key, sha, err, c.key, c.sha, c.errCode)
		}
	}
}
