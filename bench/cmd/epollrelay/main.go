//go:build linux

// Command epollrelay is a second baseline of bench/pgbench.sh: a plain TCP
// relay like tcprelay, but driven by one epoll loop on a locked OS thread
// instead of Go's netpoller and two goroutines per connection. It shows
// what a Go proxy costs when it schedules no goroutines per message, the
// way pgbouncer (libevent) works.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

const bufSize = 32 << 10

// half is one direction of a relayed connection.
type half struct {
	src, dst int
	buf      []byte
	off, n   int // pending output buf[off:n]
	eof      bool
	blocked  bool // output pending: h.dst polled for writing, h.src not read
}

type pair struct {
	a, b  half // a: client→upstream, b: upstream→client
	fds   [2]int
	alive bool
}

func main() {
	listen := flag.String("listen", "127.0.0.1:6434", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:5432", "upstream host:port")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "epollrelay:", err)
		os.Exit(1)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "epollrelay:", err)
		os.Exit(1)
	}
	newPairs := make(chan *pair, 64)
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "epollrelay:", err)
		os.Exit(1)
	}
	_ = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)})
	go loop(ep, wake, newPairs)
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "epollrelay:", err)
			os.Exit(1)
		}
		u, err := net.Dial("tcp", *upstream)
		if err != nil {
			c.Close()
			continue
		}
		cf, _ := c.(*net.TCPConn).File()
		uf, _ := u.(*net.TCPConn).File()
		c.Close()
		u.Close()
		cfd, ufd := int(cf.Fd()), int(uf.Fd())
		_ = syscall.SetNonblock(cfd, true)
		_ = syscall.SetNonblock(ufd, true)
		// The loop owns the descriptors from here on; keep the files
		// from closing them when collected.
		keep = append(keep, cf, uf)
		p := &pair{fds: [2]int{cfd, ufd}, alive: true}
		p.a = half{src: cfd, dst: ufd, buf: make([]byte, bufSize)}
		p.b = half{src: ufd, dst: cfd, buf: make([]byte, bufSize)}
		newPairs <- p
		_, _ = unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

var keep []*os.File

func loop(ep, wake int, newPairs chan *pair) {
	runtime.LockOSThread()
	byFd := map[int32]*pair{}
	events := make([]unix.EpollEvent, 128)
	var scratch [8]byte
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		for i := range n {
			fd := events[i].Fd
			if int(fd) == wake {
				_, _ = unix.Read(wake, scratch[:])
				for added := true; added; {
					select {
					case p := <-newPairs:
						for _, f := range p.fds {
							byFd[int32(f)] = p
							_ = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, f, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(f)})
						}
					default:
						added = false
					}
				}
				continue
			}
			p := byFd[fd]
			if p == nil || !p.alive {
				continue
			}
			ok := true
			ev := events[i].Events
			// Level-triggered, like pgbouncer: one read per readable
			// event, one write; EPOLLOUT only while output is pending.
			if ev&unix.EPOLLOUT != 0 {
				for _, h := range []*half{&p.a, &p.b} {
					if h.dst == int(fd) && h.off < h.n {
						ok = ok && flush(ep, p, h)
					}
				}
			}
			if ev&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				h := &p.a
				if int(fd) == p.b.src {
					h = &p.b
				}
				ok = ok && relay(ep, p, h)
			}
			if !ok || (p.a.eof && p.b.eof) {
				p.alive = false
				for _, f := range p.fds {
					delete(byFd, int32(f))
					_ = unix.Close(f)
				}
			}
		}
	}
}

// relay reads once from h.src and writes what it read to h.dst. It
// reports false on a hard error.
func relay(ep int, p *pair, h *half) bool {
	if h.off < h.n || h.eof {
		return true
	}
	r, err := unix.Read(h.src, h.buf)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return true
	case err != nil:
		return false
	case r == 0:
		h.eof = true
		_ = unix.Shutdown(h.dst, unix.SHUT_WR)
		interest(ep, p)
		return true
	}
	h.n = r
	return flush(ep, p, h)
}

// flush writes h's pending output. While some is left it stops reading
// h.src and waits for h.dst to become writable.
func flush(ep int, p *pair, h *half) bool {
	for h.off < h.n {
		w, err := unix.Write(h.dst, h.buf[h.off:h.n])
		if err == unix.EAGAIN {
			if !h.blocked {
				h.blocked = true
				interest(ep, p)
			}
			return true
		}
		if err != nil {
			return false
		}
		h.off += w
	}
	h.off, h.n = 0, 0
	if h.blocked {
		h.blocked = false
		interest(ep, p)
	}
	return true
}

// interest sets each descriptor's epoll events from the halves' state.
func interest(ep int, p *pair) {
	for _, fd := range p.fds {
		var ev uint32
		for _, h := range []*half{&p.a, &p.b} {
			if h.src == fd && !h.blocked && !h.eof {
				ev |= unix.EPOLLIN
			}
			if h.dst == fd && h.blocked {
				ev |= unix.EPOLLOUT
			}
		}
		_ = unix.EpollCtl(ep, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
	}
}
