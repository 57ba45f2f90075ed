package sshproxy

import (
	"encoding/binary"
)

// SFTP packet types the gateway looks at (draft-ietf-secsh-filexfer-02,
// version 3 as OpenSSH speaks it).
const (
	fxpOpen   = 3
	fxpClose  = 4
	fxpRead   = 5
	fxpWrite  = 6
	fxpRemove = 13
	fxpMkdir  = 14
	fxpRmdir  = 15
	fxpRename = 18
	fxpStatus = 101
	fxpHandle = 102
	fxpData   = 103

	fxfWrite = 0x2

	sftpPrefix     = 4096    // bytes of each packet kept for parsing
	sftpMaxPacket  = 1 << 24 // larger means garbage: stop parsing
	sftpMaxPending = 4096    // bound on tracked ids and handles
)

// SFTPOp is a file-system change made over sftp (remove, mkdir, rmdir,
// rename), reported by the sftp parser.
type SFTPOp struct {
	Op, Path, NewPath string
}

// sftpTracker follows both directions of an sftp session. It reports a
// Transfer when a file handle opened with SSH_FXP_OPEN is closed (size =
// bytes written, or bytes read back), and an SFTPOp for remove, mkdir,
// rmdir and rename. Directory listings, stat and setstat are not reported.
type sftpTracker struct {
	onFile func(Transfer) error
	onOp   func(SFTPOp) error

	pendingOpen map[uint32]sftpFile  // request id → file being opened
	pendingRead map[uint32]string    // request id → handle
	handles     map[string]*sftpFile // handle → open file
	broken      bool

	up, down sftpFramer
}

type sftpFile struct {
	path  string
	write bool
	bytes int64
}

func newSFTPTracker(onFile func(Transfer) error, onOp func(SFTPOp) error) *sftpTracker {
	t := &sftpTracker{
		onFile:      onFile,
		onOp:        onOp,
		pendingOpen: map[uint32]sftpFile{},
		pendingRead: map[uint32]string{},
		handles:     map[string]*sftpFile{},
	}
	t.up.handle = t.clientPacket
	t.down.handle = t.serverPacket
	return t
}

// ClientWriter returns the writer for bytes sent by the client.
func (t *sftpTracker) ClientWriter() *sftpFramer { return &t.up }

// ServerWriter returns the writer for bytes sent by the target.
func (t *sftpTracker) ServerWriter() *sftpFramer { return &t.down }

// sftpFramer splits a byte stream into sftp packets, keeping at most
// sftpPrefix bytes of each.
type sftpFramer struct {
	handle  func(prefix []byte, length uint32) error
	hdr     [4]byte
	nhdr    int
	length  uint32
	prefix  []byte
	skip    uint32
	stopped bool
}

func (f *sftpFramer) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 && !f.stopped {
		if f.nhdr < 4 {
			k := copy(f.hdr[f.nhdr:], b)
			f.nhdr += k
			b = b[k:]
			if f.nhdr < 4 {
				break
			}
			f.length = binary.BigEndian.Uint32(f.hdr[:])
			if f.length == 0 || f.length > sftpMaxPacket {
				f.stopped = true
				break
			}
			f.prefix = f.prefix[:0]
			f.skip = 0
		}
		want := int(f.length)
		if want > sftpPrefix {
			want = sftpPrefix
		}
		if len(f.prefix) < want {
			k := want - len(f.prefix)
			if k > len(b) {
				k = len(b)
			}
			f.prefix = append(f.prefix, b[:k]...)
			b = b[k:]
			if len(f.prefix) < want {
				break
			}
			if err := f.handle(f.prefix, f.length); err != nil {
				return n, err
			}
			f.skip = f.length - uint32(want)
		}
		k := uint32(len(b))
		if k > f.skip {
			k = f.skip
		}
		f.skip -= k
		b = b[k:]
		if f.skip == 0 {
			f.nhdr = 0
		}
	}
	return n, nil
}

func (t *sftpTracker) full() bool {
	return len(t.pendingOpen)+len(t.pendingRead)+len(t.handles) >= sftpMaxPending
}

func (t *sftpTracker) clientPacket(p []byte, length uint32) error {
	if t.broken || len(p) < 5 {
		return nil
	}
	typ := p[0]
	id := binary.BigEndian.Uint32(p[1:5])
	b := p[5:]
	switch typ {
	case fxpOpen:
		name, rest, ok := readString(b)
		if !ok {
			return nil
		}
		flags, _, ok := readUint32(rest)
		if !ok || t.full() {
			return nil
		}
		t.pendingOpen[id] = sftpFile{path: printable(string(name)), write: flags&fxfWrite != 0}
	case fxpRead:
		h, _, ok := readString(b)
		if ok && !t.full() {
			if _, open := t.handles[string(h)]; open {
				t.pendingRead[id] = string(h)
			}
		}
	case fxpWrite:
		h, rest, ok := readString(b)
		if !ok || len(rest) < 12 {
			return nil
		}
		n := binary.BigEndian.Uint32(rest[8:12])
		if f := t.handles[string(h)]; f != nil {
			f.bytes += int64(n)
		}
	case fxpClose:
		h, _, ok := readString(b)
		if !ok {
			return nil
		}
		f := t.handles[string(h)]
		if f == nil {
			return nil
		}
		delete(t.handles, string(h))
		dir := "download"
		if f.write {
			dir = "upload"
		}
		return t.onFile(Transfer{Protocol: "sftp", Direction: dir, Path: f.path, Size: f.bytes})
	case fxpRemove, fxpMkdir, fxpRmdir:
		name, _, ok := readString(b)
		if !ok {
			return nil
		}
		op := map[byte]string{fxpRemove: "remove", fxpMkdir: "mkdir", fxpRmdir: "rmdir"}[typ]
		return t.onOp(SFTPOp{Op: op, Path: printable(string(name))})
	case fxpRename:
		from, rest, ok := readString(b)
		if !ok {
			return nil
		}
		to, _, ok := readString(rest)
		if !ok {
			return nil
		}
		return t.onOp(SFTPOp{Op: "rename", Path: printable(string(from)), NewPath: printable(string(to))})
	}
	return nil
}

func (t *sftpTracker) serverPacket(p []byte, length uint32) error {
	if t.broken || len(p) < 5 {
		return nil
	}
	typ := p[0]
	id := binary.BigEndian.Uint32(p[1:5])
	b := p[5:]
	switch typ {
	case fxpHandle:
		f, ok := t.pendingOpen[id]
		if !ok {
			return nil
		}
		delete(t.pendingOpen, id)
		h, _, ok := readString(b)
		if ok && len(t.handles) < sftpMaxPending {
			t.handles[string(h)] = &f
		}
	case fxpData:
		h, ok := t.pendingRead[id]
		if !ok {
			return nil
		}
		delete(t.pendingRead, id)
		n, _, ok := readUint32(b)
		if f := t.handles[h]; ok && f != nil {
			f.bytes += int64(n)
		}
	case fxpStatus:
		delete(t.pendingOpen, id)
		delete(t.pendingRead, id)
	}
	return nil
}
