package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// globalOpts are the flags every client command shares.
type globalOpts struct {
	server string
	output string
}

var global globalOpts

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "airlock",
		Short:         "Temporary, MFA-verified, least-privilege access to production",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v (see `%s --help`)", errUsage, err, c.CommandPath())
	})
	def := os.Getenv("AIRLOCK_SERVER")
	if def == "" {
		def = "http://127.0.0.1:7080"
	}
	root.PersistentFlags().StringVar(&global.server, "server", def, "Airlock server URL (env AIRLOCK_SERVER)")
	root.PersistentFlags().StringVar(&global.output, "output", "text", "output format: text or json")
	root.AddCommand(newVersionCmd(), newServerCmd())
	for _, add := range extraCommands {
		root.AddCommand(add()...)
	}
	return root
}

// extraCommands lets each command-group file register itself.
var extraCommands []func() []*cobra.Command

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the airlock version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "airlock %s\n", version)
			return nil
		},
	}
}
