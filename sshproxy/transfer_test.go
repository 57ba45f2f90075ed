package sshproxy

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestSCPCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd, dir, target string
		rec, ok          bool
	}{
		{"scp -t /tmp/x", "upload", "/tmp/x", false, true},
		{"scp -v -r -t -- '/tmp/my dir'", "upload", "/tmp/my dir", true, true},
		{"/usr/bin/scp -f /etc/hosts", "download", "/etc/hosts", false, true},
		{"scp -p -f .", "download", ".", false, true},
		{"ls -t /tmp", "", "", false, false},
		{"scp /a /b", "", "", false, false},
	} {
		dir, target, rec, ok := scpCommand(tc.cmd)
		if dir != tc.dir || target != tc.target || rec != tc.rec || ok != tc.ok {
			t.Errorf("scpCommand(%q) = %q %q %v %v", tc.cmd, dir, target, rec, ok)
		}
	}
}

func TestSCPParser(t *testing.T) {
	var got []Transfer
	p := &scpParser{direction: "upload", target: "/srv", recursive: true, onFile: func(tr Transfer) error { got = append(got, tr); return nil }}
	stream := "D0755 0 site\nT1 0 1 0\nC0644 5 a.txt\nhello\x00C0600 0 empty\n\x00D0755 0 sub\nC0644 3 b\nabc\x00E\nE\nC0644 2 top\nhi\x00"
	// Feed byte by byte: chunk boundaries must not matter.
	for i := 0; i < len(stream); i++ {
		if _, err := p.Write([]byte{stream[i]}); err != nil {
			t.Fatal(err)
		}
	}
	want := []Transfer{
		{"scp", "upload", "/srv/site/a.txt", 5},
		{"scp", "upload", "/srv/site/empty", 0},
		{"scp", "upload", "/srv/site/sub/b", 3},
		{"scp", "upload", "/srv/top", 2},
	}
	if !reflect.DeepEqual(got, want) || p.broken {
		t.Errorf("got %+v (broken %v), want %+v", got, p.broken, want)
	}

	veto := errors.New("audit down")
	p = &scpParser{direction: "upload", target: "/x", onFile: func(Transfer) error { return veto }}
	if _, err := p.Write([]byte("C0644 1 x\nA\x00")); !errors.Is(err, veto) {
		t.Errorf("audit failure not propagated: %v", err)
	}
}

func FuzzSCP(f *testing.F) {
	f.Add([]byte("C0644 5 a.txt\nhello\x00D0755 0 d\nE\n"), true)
	f.Fuzz(func(t *testing.T, b []byte, upload bool) {
		dir := "download"
		if upload {
			dir = "upload"
		}
		var total int64
		p := &scpParser{direction: dir, target: "/t", onFile: func(tr Transfer) error {
			if tr.Size < 0 {
				t.Fatalf("negative size %+v", tr)
			}
			total++
			return nil
		}}
		p.Write(b)
		if len(p.line) > scpMaxLine+len(b) || len(p.dirs) > 65 {
			t.Fatal("unbounded parser state")
		}
	})
}

func sftpPacket(typ byte, id uint32, fields ...any) []byte {
	body := []byte{typ}
	body = binary.BigEndian.AppendUint32(body, id)
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			body = appendString(body, v)
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestSFTPTracker(t *testing.T) {
	var files []Transfer
	var ops []SFTPOp
	tr := newSFTPTracker(func(x Transfer) error { files = append(files, x); return nil }, func(o SFTPOp) error { ops = append(ops, o); return nil })
	c, s := tr.ClientWriter(), tr.ServerWriter()
	write := func(w *sftpFramer, b []byte) {
		// Split into odd-sized chunks.
		for len(b) > 0 {
			n := min(3, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
	}
	write(c, []byte{0, 0, 0, 5, 1, 0, 0, 0, 3}) // INIT v3
	write(c, sftpPacket(fxpOpen, 1, "/up.txt", uint32(0x1a), uint32(0)))
	write(s, sftpPacket(fxpHandle, 1, "h1"))
	write(c, sftpPacket(fxpWrite, 2, "h1", uint64(0), string(make([]byte, 5000))))
	write(c, sftpPacket(fxpWrite, 3, "h1", uint64(5000), "abc"))
	write(c, sftpPacket(fxpClose, 4, "h1"))
	write(c, sftpPacket(fxpOpen, 5, "/down.txt", uint32(1), uint32(0)))
	write(s, sftpPacket(fxpHandle, 5, "h2"))
	write(c, sftpPacket(fxpRead, 6, "h2", uint64(0), uint32(32768)))
	write(s, sftpPacket(fxpData, 6, "0123456789"))
	write(c, sftpPacket(fxpRead, 7, "h2", uint64(10), uint32(32768)))
	write(s, sftpPacket(fxpStatus, 7, uint32(1), "EOF", ""))
	write(c, sftpPacket(fxpClose, 8, "h2"))
	write(c, sftpPacket(fxpRename, 9, "/a", "/b"))
	write(c, sftpPacket(fxpRemove, 10, "/b"))
	want := []Transfer{{"sftp", "upload", "/up.txt", 5003}, {"sftp", "download", "/down.txt", 10}}
	if !reflect.DeepEqual(files, want) {
		t.Errorf("files = %+v, want %+v", files, want)
	}
	wantOps := []SFTPOp{{"rename", "/a", "/b"}, {"remove", "/b", ""}}
	if !reflect.DeepEqual(ops, wantOps) {
		t.Errorf("ops = %+v", ops)
	}
	if len(tr.handles) != 0 || len(tr.pendingOpen) != 0 || len(tr.pendingRead) != 0 {
		t.Errorf("state left behind: %d %d %d", len(tr.handles), len(tr.pendingOpen), len(tr.pendingRead))
	}
}

func FuzzSFTP(f *testing.F) {
	f.Add(sftpPacket(fxpOpen, 1, "/x", uint32(2), uint32(0)), sftpPacket(fxpHandle, 1, "h"))
	f.Fuzz(func(t *testing.T, client, server []byte) {
		tr := newSFTPTracker(func(x Transfer) error {
			if x.Size < 0 {
				t.Fatalf("negative size %+v", x)
			}
			return nil
		}, func(SFTPOp) error { return nil })
		tr.ClientWriter().Write(client)
		tr.ServerWriter().Write(server)
		tr.ClientWriter().Write(client)
		if len(tr.handles)+len(tr.pendingOpen)+len(tr.pendingRead) > sftpMaxPending {
			t.Fatal("unbounded tracker state")
		}
	})
}
