package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
			return writeOut(c, outFile, body)
		}}
	export.Flags().StringVar(&since, "since", "", "from this time (RFC 3339)")
	export.Flags().StringVar(&until, "until", "", "until this time (RFC 3339)")
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl")
	export.Flags().StringVarP(&outFile, "out", "o", "", "write to FILE instead of stdout")
	var file, pubkey, witness string
	var requireCP bool
	verify := &cobra.Command{Use: "verify [--file EXPORT --pubkey FILE] [--witness FILE_OR_URL]", Short: "Verify the hash chain, signed checkpoints and Merkle roots (exit 1 names the first bad seq); --witness also proves no rollback or truncation behind the newest witnessed checkpoint", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep *api.AuditReport
			var witnessed *airlock.Checkpoint
			if witness != "" {
				var err error
				if rep, witnessed, err = verifyWitnessed(cmd, file, pubkey, witness); err != nil {
					return err
				}
			} else if file != "" {
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
					if witnessed != nil && rep.FirstBadSeq <= witnessed.Seq {
						fmt.Fprintf(cmd.OutOrStdout(), "witness: the store was rolled back or truncated behind the newest witnessed checkpoint (seq %d, signed %s)\n",
							witnessed.Seq, witnessed.Time.UTC().Format(time.RFC3339))
					}
				}
				return &exitError{code: 1, err: fmt.Errorf("audit log verification failed at seq %d: %s", rep.FirstBadSeq, rep.Problem)}
			}
			if global.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "OK: %d events, %d signed checkpoints, chain intact\n", rep.Events, rep.Checkpoints)
				if witnessed != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "witness: the log holds the newest witnessed checkpoint (seq %d, signed %s): not rolled back or truncated behind it\n",
						witnessed.Seq, witnessed.Time.UTC().Format(time.RFC3339))
				}
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
	verify.Flags().StringVar(&witness, "witness", "", "a witness record (the file an audit witness appends to, or an http(s) URL serving it): fail when the log is behind its newest checkpoint")
	verify.Flags().BoolVar(&requireCP, "require-checkpoint", false, "exit 1 when a warning remains (an export without any checkpoint)")
	ac.AddCommand(tail, export, verify, newAuditProveCmd(), newAuditVerifyProofCmd())
	return ac
}

func newAuditProveCmd() *cobra.Command {
	var consistency bool
	cmd := &cobra.Command{Use: "prove SEQ | prove --consistency OLD NEW", Short: "Print a Merkle inclusion proof of event SEQ against the latest signed tree head, or a consistency proof between two (JSON; check it offline with verify-proof)",
		RunE: func(cmd *cobra.Command, args []string) error {
			want := 1
			if consistency {
				want = 2
			}
			if len(args) != want {
				if consistency {
					return fmt.Errorf("%w: prove --consistency takes OLD and NEW, two checkpointed tree sizes", errUsage)
				}
				return fmt.Errorf("%w: prove takes one SEQ (or --consistency OLD NEW)", errUsage)
			}
			nums := make([]int64, len(args))
			for i, a := range args {
				n, err := strconv.ParseInt(a, 10, 64)
				if err != nil || n < 1 {
					return fmt.Errorf("%w: %q is not a sequence number", errUsage, a)
				}
				nums[i] = n
			}
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			var p *api.AuditProof
			if err := c.call(func(ctx context.Context) (err error) {
				if consistency {
					p, err = c.client.AuditConsistency(ctx, nums[0], nums[1])
				} else {
					p, err = c.client.AuditProve(ctx, nums[0])
				}
				return err
			}); err != nil {
				return err
			}
			// The proof is JSON whatever --output says: it is a file to keep.
			return c.printJSON(p)
		}}
	cmd.Flags().BoolVar(&consistency, "consistency", false, "prove that the log at OLD events is a prefix of the log at NEW")
	return cmd
}

func newAuditVerifyProofCmd() *cobra.Command {
	var pubkey string
	cmd := &cobra.Command{Use: "verify-proof FILE --pubkey FILE", Short: "Check a proof from audit prove offline, with only the checkpoint public key (exit 1 when it does not hold)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubkey == "" {
				return fmt.Errorf("%w: verify-proof needs --pubkey (DATA_DIR/audit.pub, or GET %s)", errUsage, api.RouteAuditPubkey)
			}
			pub, err := readPublicKey(pubkey)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			p, err := audit.ParseProof(f)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("%s: %v", args[0], err)}
			}
			msg, err := audit.VerifyProof(pub, p)
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "FAILED: %v\n", err)
				return &exitError{code: 1, err: fmt.Errorf("proof %s does not verify: %v", args[0], err)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		}}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "checkpoint public key (PEM)")
	return cmd
}

// maxWitnessRecord bounds a witness record read from a URL.
const maxWitnessRecord = 256 << 20

// verifyWitnessed verifies the log — the export in file, or the server's
// full export — with the newest checkpoint of the witness record at
// source (a file, or an http(s) URL) checked like the log's own. The key
// is --pubkey, or the server's when verifying online without one.
func verifyWitnessed(cmd *cobra.Command, file, pubkey, source string) (*api.AuditReport, *airlock.Checkpoint, error) {
	var c *cli
	if file == "" {
		var err error
		if c, err = newCLI(cmd); err != nil {
			return nil, nil, err
		}
	}
	var pub ed25519.PublicKey
	var err error
	switch {
	case pubkey != "":
		if pub, err = readPublicKey(pubkey); err != nil {
			return nil, nil, err
		}
	case file != "":
		return nil, nil, fmt.Errorf("%w: --file needs --pubkey (DATA_DIR/audit.pub, or GET %s)", errUsage, api.RouteAuditPubkey)
	default:
		// A server that hands out another key only makes the witness
		// fail to verify: it cannot make a rolled-back log pass.
		pem, err := c.client.AuditPublicKey(c.ctx())
		if err != nil {
			return nil, nil, err
		}
		if pub, err = audit.ParsePublicKey(pem); err != nil {
			return nil, nil, fmt.Errorf("the server's checkpoint key: %v", err)
		}
	}
	var rec io.ReadCloser
	if strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://") {
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", source, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --witness: not a URL", errUsage)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("--witness: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, nil, fmt.Errorf("--witness: the witness answered %s", resp.Status)
		}
		rec = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxWitnessRecord), resp.Body}
	} else if rec, err = os.Open(source); err != nil {
		return nil, nil, fmt.Errorf("--witness: %v", err)
	}
	witnessed, err := audit.ReadWitnessedAll(rec, pub)
	rec.Close()
	if err != nil {
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("--witness %s: %v", source, err)}
	}
	// Every witnessed checkpoint is checked, not only the newest: a store
	// rewritten and regrown past the witnessed size has a newest of its own.
	var newest airlock.Checkpoint
	for _, c := range witnessed {
		if c.Seq >= newest.Seq {
			newest = c
		}
	}
	n := len(witnessed)
	fmt.Fprintf(cmd.ErrOrStderr(), "witness: %d checkpoints, the newest at seq %d signed %s\n", n, newest.Seq, newest.Time.UTC().Format(time.RFC3339))
	var log io.ReadCloser
	if file != "" {
		if log, err = os.Open(file); err != nil {
			return nil, nil, err
		}
	} else if log, err = c.client.AuditExport(c.ctx(), api.AuditQuery{}); err != nil {
		return nil, nil, err
	}
	defer log.Close()
	rep, err := audit.VerifyExportWitnessed(log, pub, witnessed)
	if err != nil {
		return nil, nil, err
	}
	return rep, &newest, nil
}

// readPublicKey reads a checkpoint public key (PEM) from path.
func readPublicKey(path string) (ed25519.PublicKey, error) {
	pb, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := audit.ParsePublicKey(pb)
	if err != nil {
		return nil, fmt.Errorf("--pubkey %s: %v", path, err)
	}
	return pub, nil
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

// writeOut copies body to outFile (created 0600, truncated), or to stdout
// when outFile is empty, and closes body: what a command's -o FILE does.
func writeOut(c *cli, outFile string, body io.ReadCloser) error {
	defer body.Close()
	if outFile == "" {
		_, err := io.Copy(c.out(), body)
		return err
	}
	f, err := os.OpenFile(outFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
