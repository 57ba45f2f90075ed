package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/api"
)

func init() {
	register(func() []*cobra.Command { return []*cobra.Command{newDBCredentialsCmd()} })
}

// newDBCredentialsCmd is `airlock db-credentials RESOURCE`: the grant's own
// database login, for a tool that cannot go through the gateway, where the
// policy rule allows it (session.direct_credentials).
func newDBCredentialsCmd() *cobra.Command {
	var otp, accessLevel string
	cmd := &cobra.Command{Use: "db-credentials RESOURCE [--access LEVEL] [--otp CODE]",
		Short: "Show your grant's own database login (ephemeral resources, where the policy allows it; not recorded by Airlock)",
		Args:  cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			var dc *api.DBCredential
			if err := c.call(func(ctx context.Context) (err error) {
				dc, err = c.client.DeliverDBCredential(ctx, api.ConnectRequest{Resource: args[0], Access: accessLevel})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(dc) // the warning is in it
			}
			fmt.Fprintf(c.errw(), "warning: %s\n", dc.Warning)
			fmt.Fprintf(c.out(), "host:port   %s\ndatabase    %s\nuser        %s\npassword    %s\nvalid until %s\n",
				dc.Addr, dc.Database, dc.User, dc.Password, dc.ValidUntil.Local().Format(time.DateTime))
			return nil
		}}
	cmd.Flags().StringVar(&accessLevel, "access", "", "access level (default: your grant's)")
	cmd.Flags().StringVar(&otp, "otp", "", "MFA code, when your MFA is not fresh enough")
	return cmd
}
