package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/audit"
)

func init() { register(func() []*cobra.Command { return []*cobra.Command{newAuditCmd()} }) }

func newAuditCmd() *cobra.Command {
	ac := &cobra.Command{Use: "audit", Short: "Read, export and verify the tamper-evident audit log"}
	var follow bool
	var action, user string
	var limit int
	tail := &cobra.Command{Use: "tail [-f] [--action A] [--user U]", Short: "Show the latest audit events (with -f, then new ones as they are written)", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		q := api.AuditQuery{Action: action, User: user, Limit: limit, Desc: true}
		var evs []airlock.Event
		if err := c.call(func(ctx context.Context) (err error) { evs, err = c.client.AuditEvents(ctx, q); return err }); err != nil {
			return err
		}
		slices.Reverse(evs) // oldest first
		var last int64
		for _, e := range evs {
			last = max(last, e.Seq)
		}
		switch {
		case c.json() && !follow:
			// A list is one JSON array.
			return c.printJSON(evs)
		case c.json():
			// A stream is JSON Lines, one event a line.
			for _, e := range evs {
				if err := printEventLine(c, e); err != nil {
					return err
				}
			}
		default:
			for _, e := range evs {
				printEvent(c, e)
			}
		}
		if follow {
			return followAudit(c, last, action, user)
		}
		return nil
	}}
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	tail.Flags().StringVar(&action, "action", "", "only this action (prefix with *, e.g. grant.*)")
	tail.Flags().StringVar(&user, "user", "", "only events by this user")
	tail.Flags().IntVarP(&limit, "limit", "n", 20, "how many events")
	var since, until, format, outFile string
	export := &cobra.Command{Use: "export [--since T] [--until T] [--format jsonl] [-o FILE]", Short: "Export the log with its signed checkpoints", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if format != "jsonl" {
				return fmt.Errorf("%w: --format %q: only jsonl is supported", errUsage, format)
			}
			body, err := c.client.AuditExport(c.ctx(), api.AuditQuery{Since: since, Until: until})
			if err != nil {
				return err
			}
			defer body.Close()
			var w io.Writer = c.out()
			if outFile != "" {
				f, err := os.OpenFile(outFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			_, err = io.Copy(w, body)
			return err
		}}
	export.Flags().StringVar(&since, "since", "", "from this time (RFC 3339)")
	export.Flags().StringVar(&until, "until", "", "until this time (RFC 3339)")
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl")
	export.Flags().StringVarP(&outFile, "out", "o", "", "write to FILE instead of stdout")
	var file, pubkey string
	var requireCP bool
	verify := &cobra.Command{Use: "verify [--file EXPORT --pubkey FILE]", Short: "Verify the hash chain and signed checkpoints (exit 1 names the first bad seq)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *api.AuditReport
			if file != "" {
				if pubkey == "" {
					return fmt.Errorf("%w: --file needs --pubkey (DATA_DIR/audit.pub, or GET %s)", errUsage, api.RouteAuditPubkey)
				}
				pb, err := os.ReadFile(pubkey)
				if err != nil {
					return err
				}
				pub, err := audit.ParsePublicKey(pb)
				if err != nil {
					return fmt.Errorf("--pubkey %s: %v", pubkey, err)
				}
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				if rep, err = audit.VerifyExport(f, pub); err != nil {
					return err
				}
			} else {
				c, err := newCLI(cmd)
				if err != nil {
					return err
				}
				if err := c.call(func(ctx context.Context) (err error) { rep, err = c.client.AuditVerify(ctx); return err }); err != nil {
					return err
				}
			}
			if global.output == "json" {
				c := &cli{cmd: cmd}
				c.printJSON(rep)
			}
			if !rep.OK {
				if global.output != "json" {
					fmt.Fprintf(cmd.OutOrStdout(), "FAILED at seq %d: %s (%s)\n", rep.FirstBadSeq, rep.Message, rep.Problem)
				}
				return &exitError{code: 1, err: fmt.Errorf("audit log verification failed at seq %d: %s", rep.FirstBadSeq, rep.Problem)}
			}
			if global.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "OK: %d events, %d signed checkpoints, chain intact\n", rep.Events, rep.Checkpoints)
			}
			for _, w := range rep.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			if requireCP && len(rep.Warnings) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("audit log verification: --require-checkpoint: %s", rep.Warnings[0])}
			}
			return nil
		}}
	verify.Flags().StringVar(&file, "file", "", "verify an export file offline")
	verify.Flags().StringVar(&pubkey, "pubkey", "", "checkpoint public key (PEM) for --file")
	verify.Flags().BoolVar(&requireCP, "require-checkpoint", false, "exit 1 when a warning remains (an export without any checkpoint)")
	ac.AddCommand(tail, export, verify)
	return ac
}

// printEventLine writes e as one line of JSON (JSON Lines, for streams).
func printEventLine(c *cli, e airlock.Event) error {
	return json.NewEncoder(c.out()).Encode(e)
}

// printEvent writes e as one line for people.
func printEvent(c *cli, e airlock.Event) {
	var d bytes.Buffer
	if json.Compact(&d, e.Details) != nil {
		d.Reset()
		d.Write(e.Details)
	}
	ids := strings.TrimSpace(strings.Join([]string{e.RequestID, e.GrantID, e.SessionID}, " "))
	fmt.Fprintf(c.out(), "%6d  %s  %-8s %-24s %-10s %s %s %s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"), e.Outcome, e.Action, e.Actor.Name, e.Resource, ids, d.String())
}

// followAudit prints the events after seq last as the server streams them
// (one following read, audited once when it starts) until the stream ends
// or the command is interrupted.
func followAudit(c *cli, last int64, action, user string) error {
	stream, err := c.client.AuditFollow(c.ctx(), api.AuditQuery{After: last, Action: action, User: user})
	if err != nil {
		return err
	}
	defer stream.Close()
	for {
		e, err := stream.Next()
		if err != nil {
			if c.ctx().Err() != nil {
				return nil // interrupted
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the server ended the audit stream (signed out, audit access lost, or the server stopped); log in and run it again")
			}
			return fmt.Errorf("audit stream: %w", err)
		}
		if c.json() {
			if err := printEventLine(c, e); err != nil {
				return err
			}
			continue
		}
		printEvent(c, e)
	}
}
