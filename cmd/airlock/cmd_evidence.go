package main

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/audit"
	"github.com/airlockhq/airlock/evidence"
)

func init() { register(func() []*cobra.Command { return []*cobra.Command{newEvidenceCmd()} }) }

func newEvidenceCmd() *cobra.Command {
	var outFile string
	ec := &cobra.Command{Use: "evidence GRANT_ID -o PACK.zip",
		Short: "Download a grant's evidence pack: request, rule, reviews, sessions, statements, recordings, its end, and a Merkle proof for every event",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if outFile == "" {
				return fmt.Errorf("%w: -o PACK.zip is required", errUsage)
			}
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			body, err := c.client.Evidence(c.ctx(), args[0])
			if err != nil {
				return err
			}
			if err := writeOut(c, outFile, body); err != nil {
				return err
			}
			if !c.json() {
				fmt.Fprintf(c.out(), "Evidence pack of %s written to %s; check it anywhere with `airlock evidence verify %s --pubkey audit.pub`.\n", args[0], outFile, outFile)
			}
			return nil
		}}
	ec.Flags().StringVarP(&outFile, "out", "o", "", "write the pack to FILE")
	var pubkey string
	verify := &cobra.Command{Use: "verify PACK.zip [--pubkey FILE]", Short: "Check an evidence pack offline, with no server, and print what it proves",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pub ed25519.PublicKey
			if pubkey != "" {
				pb, err := os.ReadFile(pubkey)
				if err != nil {
					return err
				}
				if pub, err = audit.ParsePublicKey(pb); err != nil {
					return fmt.Errorf("--pubkey %s: %v", pubkey, err)
				}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			sum, err := evidence.Verify(f, fi.Size(), pub)
			if err != nil {
				return fmt.Errorf("evidence pack %s does NOT verify: %v", args[0], err)
			}
			c := &cli{cmd: cmd}
			if c.json() {
				return c.printJSON(sum)
			}
			fmt.Fprint(c.out(), sum.String())
			return nil
		}}
	verify.Flags().StringVar(&pubkey, "pubkey", "", "the checkpoint public key you trust (PEM; the server's DATA_DIR/audit.pub or `GET /api/v1/audit/pubkey`); without it the pack's own key is used and the summary says so")
	ec.AddCommand(verify)
	return ec
}
