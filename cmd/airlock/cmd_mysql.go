package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/api"
)

func init() {
	register(func() []*cobra.Command { return []*cobra.Command{newMySQLCmd()} })
}

func newMySQLCmd() *cobra.Command {
	var otp, accessLevel, database string
	cmd := &cobra.Command{Use: "mysql RESOURCE [--otp CODE] [-- client args…]", Short: "Open the mariadb/mysql client on a database through the gateway (token via env, never argv)",
		Long: `Mint a connect token and exec the real mariadb (or mysql) client at the MySQL gateway over TLS,
verifying the gateway's certificate against Airlock's CA. The token goes in MYSQL_PWD (the
client's environment, never argv); --no-defaults keeps option files from overriding it.`,
		Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			t, info, err := mintTokenFor(c, args[0], accessLevel, "MySQL", "--mysql-addr", func(i *api.GatewayInfo) string { return i.MySQLAddr })
			if err != nil {
				return err
			}
			ca, err := writeCA(info)
			if err != nil {
				return err
			}
			host, port, err := net.SplitHostPort(info.MySQLAddr)
			if err != nil {
				return err
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			client := os.Getenv("AIRLOCK_MYSQL")
			if client == "" {
				for _, name := range []string{"mariadb", "mysql"} {
					if client, err = exec.LookPath(name); err == nil {
						break
					}
				}
				if client == "" || err != nil {
					return errors.New("neither mariadb nor mysql found on PATH; install a client (apt-get install mariadb-client) or set AIRLOCK_MYSQL")
				}
			}
			db := t.Resource
			if database != "" {
				db += "/" + database
			}
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "MYSQL_") {
					env = append(env, kv)
				}
			}
			env = append(env, "MYSQL_PWD="+t.Token)
			argv := []string{client, "--no-defaults", "--host=" + host, "--port=" + port, "--user=" + t.User, "--database=" + db,
				"--ssl", "--ssl-ca=" + ca, "--ssl-verify-server-cert"}
			rest := args[1:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
			if !c.json() {
				fmt.Fprintf(c.errw(), "airlock: %s on %s (grant %s, until %s)\n", t.Access, t.Resource, t.GrantID, fmtTime(t.GrantEnds))
			}
			return syscall.Exec(client, append(argv, rest...), env)
		}}
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	cmd.Flags().StringVar(&database, "dbname", "", "upstream database (default: the resource's)")
	cmd.Flags().SetInterspersed(false)
	return cmd
}
