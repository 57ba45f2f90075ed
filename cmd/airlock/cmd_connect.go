package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/recording"
)

func init() {
	register(func() []*cobra.Command {
		return []*cobra.Command{newPsqlCmd(), newConnectCmd(), newSSHCmd(), newSSHConfigCmd(), newSessionsCmd()}
	})
}

// mintToken gets a connect token for the PostgreSQL gateway.
func mintToken(c *cli, resource, accessLevel string) (*api.ConnectToken, *api.GatewayInfo, error) {
	return mintTokenFor(c, resource, accessLevel, "PostgreSQL", "--pg-addr", func(i *api.GatewayInfo) string { return i.PGAddr })
}

// mintTokenFor gets a connect token, explaining how to get a grant when
// there is none, and checks that the gateway (named by addr) is enabled.
func mintTokenFor(c *cli, resource, accessLevel, gateway, flag string, addr func(*api.GatewayInfo) string) (*api.ConnectToken, *api.GatewayInfo, error) {
	var t *api.ConnectToken
	if err := c.call(func(ctx context.Context) (err error) {
		t, err = c.client.MintConnectToken(ctx, api.ConnectRequest{Resource: resource, Access: accessLevel})
		return err
	}); err != nil {
		return nil, nil, err
	}
	info, err := c.client.Info(c.ctx())
	if err != nil {
		return nil, nil, err
	}
	if addr(info) == "" {
		return nil, nil, fmt.Errorf("the server's %s gateway is disabled (%s)", gateway, flag)
	}
	return t, info, nil
}

// writeCA stores the gateway CA for sslrootcert.
func writeCA(info *api.GatewayInfo) (string, error) {
	if err := os.MkdirAll(airlockHome(), 0o700); err != nil {
		return "", err
	}
	p := filepath.Join(airlockHome(), "gateway-ca.pem")
	return p, os.WriteFile(p, []byte(info.TLSCA), 0o600)
}

func newPsqlCmd() *cobra.Command {
	var otp, accessLevel, database string
	cmd := &cobra.Command{Use: "psql RESOURCE [--otp CODE] [-- psql args…]", Short: "Open psql on a database through the gateway (token via env, never argv)",
		Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			t, info, err := mintToken(c, args[0], accessLevel)
			if err != nil {
				return err
			}
			ca, err := writeCA(info)
			if err != nil {
				return err
			}
			host, port, err := net.SplitHostPort(info.PGAddr)
			if err != nil {
				return err
			}
			psql := os.Getenv("AIRLOCK_PSQL")
			if psql == "" {
				if psql, err = exec.LookPath("psql"); err != nil {
					return errors.New("psql not found on PATH; install the PostgreSQL client (apt-get install postgresql-client) or set AIRLOCK_PSQL")
				}
			}
			db := t.Resource
			if database != "" {
				db += "/" + database
			}
			// Drop the user's own PG* variables: libpq reads the first of
			// duplicate entries, so a PGUSER or PGSSLMODE left in the shell
			// would override (or downgrade) the gateway connection.
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "PG") {
					env = append(env, kv)
				}
			}
			env = append(env, "PGHOST="+host, "PGPORT="+port, "PGUSER="+t.User, "PGDATABASE="+db,
				"PGPASSWORD="+t.Token, "PGSSLMODE=verify-ca", "PGSSLROOTCERT="+ca, "PGGSSENCMODE=disable", "PGAPPNAME=airlock")
			if !c.json() {
				fmt.Fprintf(c.errw(), "airlock: %s on %s (grant %s, until %s)\n", t.Access, t.Resource, t.GrantID, fmtTime(t.GrantEnds))
			}
			return syscall.Exec(psql, append([]string{"psql"}, args[1:]...), env)
		}}
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	cmd.Flags().StringVar(&accessLevel, "access", "", "which grant's access level (when you hold several)")
	cmd.Flags().StringVar(&database, "dbname", "", "upstream database (default: the resource's)")
	return cmd
}

func newSSHCmd() *cobra.Command {
	var otp, login string
	var stdio, fetchCert bool
	cmd := &cobra.Command{Use: "ssh RESOURCE [-l LOGIN] [--otp CODE] [-- command…]", Short: "SSH to a host through the gateway with a 5-minute certificate",
		Args: cobra.MinimumNArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			resource := strings.TrimSuffix(args[0], ".airlock")
			if l, r, ok := strings.Cut(resource, "@"); ok {
				login, resource = l, r
			}
			if fetchCert || stdio {
				// From ssh-config, -l is OpenSSH's remote user (%r), which
				// for the gateway is LOGIN@RESOURCE; without "@" it names
				// no login and the grant's is used.
				if l, _, ok := strings.Cut(login, "@"); ok {
					login = l
				} else {
					login = ""
				}
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			sshPub, _ := ssh.NewPublicKey(pub)
			var cert *api.SSHCertResponse
			if err := c.call(func(ctx context.Context) (err error) {
				cert, err = c.client.SSHCert(ctx, api.ConnectRequest{Resource: resource, Access: login, PublicKey: string(ssh.MarshalAuthorizedKey(sshPub))})
				return err
			}); err != nil {
				return err
			}
			dir, err := os.MkdirTemp(airlockHome(), "ssh-")
			if err != nil {
				if err := os.MkdirAll(airlockHome(), 0o700); err != nil {
					return err
				}
				if dir, err = os.MkdirTemp(airlockHome(), "ssh-"); err != nil {
					return err
				}
			}
			defer os.RemoveAll(dir)
			blk, err := ssh.MarshalPrivateKey(priv, "airlock ephemeral")
			if err != nil {
				return err
			}
			keyPath := filepath.Join(dir, "id_ed25519")
			if err := os.WriteFile(keyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
				return err
			}
			os.WriteFile(keyPath+"-cert.pub", []byte(cert.Certificate+"\n"), 0o600)
			kh := filepath.Join(dir, "known_hosts")
			os.WriteFile(kh, []byte(cert.KnownHosts), 0o600)
			host, port, _ := net.SplitHostPort(cert.SSHAddr)
			if fetchCert {
				return writeSSHCert(cert, priv)
			}
			if stdio {
				return sshStdio(cert, priv)
			}
			sshBin, err := exec.LookPath("ssh")
			if err != nil {
				return errors.New("ssh not found on PATH; install openssh-client")
			}
			argv := []string{"ssh", "-i", keyPath, "-o", "CertificateFile=" + keyPath + "-cert.pub", "-o", "IdentitiesOnly=yes",
				"-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
				"-p", port, "-l", cert.Login + "@" + cert.Resource, host}
			argv = append(argv, args[1:]...)
			// ssh runs as a child so the temporary key is removed afterwards.
			p := exec.Command(sshBin, argv[1:]...)
			p.Stdin, p.Stdout, p.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := p.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &exitError{code: ee.ExitCode(), err: nil}
				}
				return err
			}
			return nil
		}}
	cmd.Flags().StringVarP(&login, "login", "l", "", "login on the target (default: your grant's)")
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	cmd.Flags().BoolVar(&stdio, "stdio", false, "store a fresh certificate for ssh-config and connect stdin/stdout to the gateway (ProxyCommand)")
	cmd.Flags().BoolVar(&fetchCert, "fetch-cert", false, "only store a fresh certificate where ssh-config points (its Match exec runs this)")
	return cmd
}

// writeSSHCert stores the key, certificate and gateway host key where the
// ssh-config block points OpenSSH.
func writeSSHCert(cert *api.SSHCertResponse, priv ed25519.PrivateKey) error {
	dir := filepath.Join(airlockHome(), "ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "airlock ephemeral")
	if err != nil {
		return err
	}
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(blk), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(key+"-cert.pub", []byte(cert.Certificate+"\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(airlockHome(), "known_hosts"), []byte(cert.KnownHosts), 0o600)
}

// sshStdio stores a fresh certificate and relays stdin/stdout to the
// gateway. As a ProxyCommand it is only a relay for OpenSSH, which loads
// certificates before running the proxy: ssh-config fetches them with
// --fetch-cert from a Match exec instead.
func sshStdio(cert *api.SSHCertResponse, priv ed25519.PrivateKey) error {
	if err := writeSSHCert(cert, priv); err != nil {
		return err
	}
	conn, err := net.Dial("tcp", cert.SSHAddr)
	if err != nil {
		return fmt.Errorf("cannot reach the SSH gateway at %s: %v", cert.SSHAddr, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(conn, os.Stdin); done <- struct{}{} }()
	go func() { io.Copy(os.Stdout, conn); done <- struct{}{} }()
	<-done
	return nil
}

func newSSHConfigCmd() *cobra.Command {
	return &cobra.Command{Use: "ssh-config", Short: "Print an OpenSSH config block so plain ssh/scp/rsync reach *.airlock hosts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			info, err := c.client.Info(c.ctx())
			if err != nil {
				return err
			}
			self, _ := os.Executable()
			host, port, _ := net.SplitHostPort(info.SSHAddr)
			fmt.Fprintf(c.out(), `# Airlock: add to ~/.ssh/config; then plain ssh/scp/sftp/rsync reach the gateway:
#   ssh -l LOGIN@RESOURCE RESOURCE.airlock        (scp/rsync: -o User=LOGIN@RESOURCE)
# Before each connection OpenSSH runs airlock to fetch a fresh 5-minute
# certificate for your grant (MFA if the policy wants it fresh).
Match originalhost *.airlock exec "'%s' --server '%s' ssh --fetch-cert -l %%r %%n"
Host *.airlock
    HostName %s
    Port %s
    IdentityFile %s
    CertificateFile %s
    IdentitiesOnly yes
    UserKnownHostsFile %s
`, self, global.server, host, port, filepath.Join(airlockHome(), "ssh", "id_ed25519"),
				filepath.Join(airlockHome(), "ssh", "id_ed25519-cert.pub"), filepath.Join(airlockHome(), "known_hosts"))
			return nil
		}}
}

func newSessionsCmd() *cobra.Command {
	var active bool
	cmd := &cobra.Command{Use: "sessions [--active]", Short: "List gateway sessions; kill or replay one", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			var ss []airlock.Session
			if err := c.call(func(ctx context.Context) (err error) { ss, err = c.client.Sessions(ctx, active); return err }); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(ss)
			}
			t := c.table()
			fmt.Fprintln(t, "ID\tUSER\tRESOURCE\tKIND\tACCESS\tSTARTED\tENDED\tREASON\tSTATEMENTS\tIN/OUT")
			for _, s := range ss {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d/%d\n", s.ID, s.UserName, s.Resource, s.Kind, s.Access, fmtTime(s.StartedAt), fmtTime(s.EndedAt), s.EndReason, s.Statements, s.BytesIn, s.BytesOut)
			}
			return t.Flush()
		}}
	cmd.Flags().BoolVar(&active, "active", false, "only live sessions")
	var otp string
	kill := &cobra.Command{Use: "kill ID", Short: "End a live session now (audited)", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		c.otp = otp
		var res *api.KillResult
		if err := c.call(func(ctx context.Context) (err error) {
			res, err = c.client.KillSession(ctx, args[0], api.OTPRequest{})
			return err
		}); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(res)
		}
		if res.Ended {
			fmt.Fprintf(c.out(), "Session %s: no live server held it (node %s stopped without ending it); its record is now ended (%s).\n", args[0], res.Node, res.EndReason)
			return nil
		}
		fmt.Fprintf(c.out(), "Session %s killed.\n", args[0])
		return nil
	}}
	kill.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	var speed float64
	var part int
	play := &cobra.Command{Use: "play ID [--part N] [--speed N]", Short: "Replay a session recording (SSH terminal, kubectl exec -it) in this terminal", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		if part < 0 {
			return fmt.Errorf("%w: --part %d: recordings count from 1", errUsage, part)
		}
		rec, err := c.client.Recording(c.ctx(), args[0], part)
		if err != nil {
			return err
		}
		defer rec.Body.Close()
		data, err := io.ReadAll(rec.Body)
		if err != nil {
			return err
		}
		if want := rec.SHA256; want != "" {
			if err := recording.Verify(strings.NewReader(string(data)), want); err != nil {
				return err
			}
		}
		return recording.Play(strings.NewReader(string(data)), c.out(), speed, nil)
	}}
	play.Flags().Float64Var(&speed, "speed", 1, "playback speed (0 = no delays)")
	play.Flags().IntVar(&part, "part", 0, "which recording of a session with several (each kubectl exec -it has its own), from 1")
	cmd.AddCommand(kill, play)
	return cmd
}
