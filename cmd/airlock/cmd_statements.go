package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
)

func init() {
	register(func() []*cobra.Command { return []*cobra.Command{newStatementsCmd()} })
}

// newStatementsCmd is `airlock statements`: statements a gateway holds for
// a second person's approval (require_approval).
func newStatementsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "statements", Short: "Statements held for approval (list, approve, deny)"}
	list := &cobra.Command{Use: "list", Short: "List held statements you may decide, and your own", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			var hs []api.StatementHold
			if err := c.call(func(ctx context.Context) (err error) { hs, err = c.client.Statements(ctx); return err }); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(hs)
			}
			if len(hs) == 0 {
				fmt.Fprintln(c.out(), "No held statements.")
				return nil
			}
			t := c.table()
			fmt.Fprintln(t, "ID\tUSER\tRESOURCE\tRULE\tEXPIRES\tREASON\tSTATEMENT")
			for _, h := range hs {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.UserName, h.Resource, h.Rule, fmtTime(h.ExpiresAt), oneLine(h.Reason, 40),
					oneLine(h.Statement, 80))
			}
			return t.Flush()
		}}
	cmd.AddCommand(list, newStatementDecideCmd(airlock.DecisionApprove), newStatementDecideCmd(airlock.DecisionDeny))
	return cmd
}

// oneLine shows s on one table line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func newStatementDecideCmd(decision string) *cobra.Command {
	var comment, otp string
	cmd := &cobra.Command{Use: decision + " ID [--comment TEXT] [--otp CODE]",
		Short: strings.ToUpper(decision[:1]) + decision[1:] + " a held statement (needs fresh MFA; not your own)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			var h *api.StatementHold
			if err := c.call(func(ctx context.Context) (err error) {
				h, err = c.client.DecideStatement(ctx, args[0], decision, api.ReviewInput{Comment: comment})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(h)
			}
			fmt.Fprintf(c.out(), "Statement %s of %s on %s: %s.\n", h.ID, h.UserName, h.Resource, h.State)
			return nil
		}}
	cmd.Flags().StringVar(&comment, "comment", "", "a comment for the requester (shown in their error on a denial) and the audit log")
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	return cmd
}
