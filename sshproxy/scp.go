package sshproxy

import (
	"path"
	"strconv"
	"strings"
)

// Transfer is one file moved through the gateway, as parsed from the scp or
// sftp protocol.
type Transfer struct {
	Protocol  string // "scp" or "sftp"
	Direction string // "upload" (to the target) or "download"
	Path      string
	Size      int64
}

// scpCommand recognises a remote scp invocation ("scp -t [--] TARGET" for
// uploads, "scp -f [--] SOURCE" for downloads, as sent by scp -O).
func scpCommand(cmd string) (direction, target string, recursive, ok bool) {
	fields := strings.Fields(cmd)
	if len(fields) < 2 || path.Base(fields[0]) != "scp" {
		return "", "", false, false
	}
	var args []string
	endOpts := false
	for _, f := range fields[1:] {
		if !endOpts && f == "--" {
			endOpts = true
			continue
		}
		if !endOpts && strings.HasPrefix(f, "-") && len(f) > 1 {
			for _, c := range f[1:] {
				switch c {
				case 't':
					direction = "upload"
				case 'f':
					direction = "download"
				case 'r':
					recursive = true
				}
			}
			continue
		}
		args = append(args, f)
	}
	if direction == "" {
		return "", "", false, false
	}
	if len(args) > 0 {
		target = unquoteShell(strings.Join(args, " "))
	}
	return direction, target, recursive, true
}

// unquoteShell removes one level of simple single or double quotes as scp
// adds them around paths.
func unquoteShell(s string) string {
	if len(s) >= 2 && (s[0] == '\'' && s[len(s)-1] == '\'' || s[0] == '"' && s[len(s)-1] == '"') {
		return s[1 : len(s)-1]
	}
	return s
}

// scpParser follows the source side of the scp protocol (C, D, E and T
// lines, file bytes, status bytes) and reports each file before its
// content is forwarded. It never blocks the stream: once it sees something
// it does not understand it stops parsing (Broken reports it).
type scpParser struct {
	direction string
	target    string
	recursive bool
	onFile    func(Transfer) error

	state     int // scpLine, scpData, scpStatus
	line      []byte
	remaining int64
	dirs      []string
	broken    bool
}

const (
	scpLine = iota
	scpData
	scpStatus
	scpMaxLine = 8 << 10
)

// Write consumes a chunk of the source stream. It returns the error of
// onFile (the transfer must then not be forwarded) and nothing else.
func (p *scpParser) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 && !p.broken {
		switch p.state {
		case scpData:
			k := int64(len(b))
			if k > p.remaining {
				k = p.remaining
			}
			p.remaining -= k
			b = b[k:]
			if p.remaining == 0 {
				p.state = scpStatus
			}
		case scpStatus:
			b = b[1:] // the source's status byte after the file content
			p.state = scpLine
		case scpLine:
			i := indexByte(b, '\n')
			if i < 0 {
				p.line = append(p.line, b...)
				if len(p.line) > scpMaxLine {
					p.broken = true
				}
				return n, nil
			}
			p.line = append(p.line, b[:i]...)
			b = b[i+1:]
			line := string(p.line)
			p.line = p.line[:0]
			if err := p.handleLine(line); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (p *scpParser) handleLine(line string) error {
	if line == "" {
		p.broken = true
		return nil
	}
	switch line[0] {
	case 'T', '\x01', '\x02':
		return nil // times; warnings
	case 'E':
		if len(p.dirs) > 0 {
			p.dirs = p.dirs[:len(p.dirs)-1]
		}
		return nil
	case 'C', 'D':
		// "C0644 1234 name" / "D0755 0 name"
		parts := strings.SplitN(line[1:], " ", 3)
		if len(parts) != 3 {
			p.broken = true
			return nil
		}
		size, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || size < 0 {
			p.broken = true
			return nil
		}
		name := printable(parts[2])
		if line[0] == 'D' {
			if len(p.dirs) > 64 {
				p.broken = true
				return nil
			}
			p.dirs = append(p.dirs, name)
			return nil
		}
		if err := p.onFile(Transfer{Protocol: "scp", Direction: p.direction, Path: p.path(name), Size: size}); err != nil {
			return err
		}
		p.remaining = size
		p.state = scpData
		if size == 0 {
			p.state = scpStatus
		}
		return nil
	}
	p.broken = true
	return nil
}

// path names the remote file. For a single top-level file it is the
// command's path argument (the target may be a directory, in which case
// the file is PATH/NAME: the protocol does not say). In recursive copies
// it is the target joined with the directories walked and the file name.
func (p *scpParser) path(name string) string {
	t := p.target
	if t == "" {
		t = "."
	}
	if len(p.dirs) == 0 {
		if p.recursive && p.direction == "upload" {
			return path.Join(t, name)
		}
		return t
	}
	parts := p.dirs
	if p.direction == "download" {
		// Downloads start with a D line for the source directory itself.
		parts = parts[1:]
	}
	return path.Join(append(append([]string{t}, parts...), name)...)
}
