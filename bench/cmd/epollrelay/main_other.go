//go:build !linux

// Command epollrelay needs Linux's epoll; elsewhere it says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "epollrelay: Linux only (epoll)")
	os.Exit(1)
}
