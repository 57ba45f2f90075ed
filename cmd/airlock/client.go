package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
)

// stdin is where --password-stdin reads from (tests replace it).
var stdin io.Reader = os.Stdin

// clientState is what the CLI keeps between commands in $AIRLOCK_HOME.
type clientState struct {
	Server    string    `json:"server"`
	User      string    `json:"user"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func airlockHome() string {
	if h := os.Getenv("AIRLOCK_HOME"); h != "" {
		return h
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "airlock")
	}
	return filepath.Join(os.Getenv("HOME"), ".config", "airlock")
}

func statePath() string { return filepath.Join(airlockHome(), "session.json") }

func loadState() (*clientState, error) {
	b, err := os.ReadFile(statePath())
	if errors.Is(err, os.ErrNotExist) {
		return &clientState{}, nil
	}
	if err != nil {
		return nil, err
	}
	var s clientState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("client state %s is corrupt; run `airlock login` again", statePath())
	}
	return &s, nil
}

func saveState(s *clientState) error {
	if err := os.MkdirAll(airlockHome(), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath())
}

// cli bundles a command's I/O and API client.
type cli struct {
	cmd    *cobra.Command
	client *api.Client
	state  *clientState
	otp    string // from --otp: verified before the next call, whatever the session's freshness
}

func newCLI(cmd *cobra.Command) (*cli, error) {
	st, err := loadState()
	if err != nil {
		return nil, err
	}
	server := global.server
	token := st.Token
	if st.Server != "" && strings.TrimRight(st.Server, "/") != strings.TrimRight(server, "/") {
		token = "" // a session is only valid for the server that issued it
	}
	return &cli{cmd: cmd, client: api.NewClient(server, token), state: st}, nil
}

func (c *cli) out() io.Writer  { return c.cmd.OutOrStdout() }
func (c *cli) errw() io.Writer { return c.cmd.ErrOrStderr() }
func (c *cli) ctx() context.Context {
	return c.cmd.Context()
}
func (c *cli) json() bool { return global.output == "json" }

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out(), 0, 4, 2, ' ', 0) }

// call performs an API call (one typed api.Client method, in f). A code
// given with --otp is verified first, whatever the session's MFA
// freshness: a wrong code fails the command before anything else is sent.
// Without one, on mfa_required it asks for a code, refreshes MFA and
// retries once.
func (c *cli) call(f func(ctx context.Context) error) error {
	if code := c.otp; code != "" {
		c.otp = ""
		if err := c.verifyOTP(code); err != nil {
			return err
		}
	}
	err := f(c.ctx())
	if airlock.ErrorCode(err) != airlock.EMFAREQUIRED {
		return err
	}
	var ae *airlock.Error
	errors.As(err, &ae)
	if ms, _ := ae.Details["methods"].([]any); len(ms) == 1 && ms[0] == "webauthn" {
		return fmt.Errorf("%s (this needs a passkey or security key: open %s/webauthn)", ae.Message, global.server)
	}
	code, perr := c.prompt("MFA code (authenticator app or recovery code): ", false)
	if perr != nil || code == "" {
		return ae
	}
	if err := c.verifyOTP(code); err != nil {
		return err
	}
	return f(c.ctx())
}

// verifyOTP refreshes the session's MFA with code (a step-up the server
// always verifies and audits).
func (c *cli) verifyOTP(code string) error {
	_, err := c.client.VerifyMFA(c.ctx(), api.FactorInput{OTP: code})
	if err == nil {
		return nil
	}
	var ae *airlock.Error
	if errors.As(err, &ae) && ae.Code == airlock.EUNAUTHORIZED {
		return &airlock.Error{Code: ae.Code, Message: "the MFA code was not accepted (wrong, expired or already used); nothing was done: retry with a current code", Err: err}
	}
	return err
}

// prompt reads a line from the terminal (no echo when secret). It fails
// when stdin is not a terminal, so scripts must use flags.
func (c *cli) prompt(label string, secret bool) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to prompt on")
	}
	fmt.Fprint(c.errw(), label)
	if secret {
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(c.errw())
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	return strings.TrimSpace(line), err
}

// readSecretStdin reads a password from stdin (first line).
func readSecretStdin() (string, error) {
	b, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, "\r"), nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func fmtLeft(secs int64) string {
	if secs <= 0 {
		return "-"
	}
	d := time.Duration(secs) * time.Second
	h := int(d.Hours())
	m := int(d.Minutes()) % 60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm", h, m)
	}
	return fmt.Sprintf("%dm%02ds", m, int(d.Seconds())%60)
}

func register(f func() []*cobra.Command) { extraCommands = append(extraCommands, f) }
