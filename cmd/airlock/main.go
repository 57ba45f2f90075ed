// Command airlock is Airlock's single binary: the server (control plane and
// gateways) and the client CLI.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/airlockhq/airlock"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if errors.Is(err, errUsage) {
			code = 2
		}
		if msg := userMessage(err); msg != "" {
			fmt.Fprintln(os.Stderr, "airlock:", msg)
		}
		os.Exit(code)
	}
}

var errUsage = errors.New("usage")

// userMessage turns an error into the one line the CLI prints.
func userMessage(err error) string {
	var ae *airlock.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.err == nil {
		return ""
	}
	return err.Error()
}
