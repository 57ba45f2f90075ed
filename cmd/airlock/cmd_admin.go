package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/sshca"
)

func init() { register(func() []*cobra.Command { return []*cobra.Command{newAdminCmd()} }) }

func newAdminCmd() *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Administer users, groups, resources and certificate authorities"}
	var otp string
	admin.PersistentFlags().StringVar(&otp, "otp", "", "a current MFA code (always verified, fresh MFA or not)")

	users := &cobra.Command{Use: "users", Short: "Manage users"}
	var groups []string
	var pwStdin bool
	addUser := &cobra.Command{Use: "add NAME", Short: "Add a local user", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		c.otp = otp
		pw, err := readPassword(c, pwStdin, true)
		if err != nil {
			return err
		}
		var u *airlock.User
		if err := c.call(func(ctx context.Context) (err error) {
			u, err = c.client.CreateUser(ctx, api.CreateUserRequest{Name: args[0], Password: pw, Groups: groups})
			return err
		}); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(u)
		}
		fmt.Fprintf(c.out(), "Added user %s (groups: %s).\n", u.Name, strings.Join(u.Groups, ", "))
		return nil
	}}
	addUser.Flags().StringArrayVar(&groups, "group", nil, "group membership (repeatable)")
	addUser.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin")
	listUsers := &cobra.Command{Use: "list", Short: "List users", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var us []airlock.User
		if err := c.call(func(ctx context.Context) (err error) { us, err = c.client.Users(ctx); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(us)
		}
		t := c.table()
		fmt.Fprintln(t, "NAME\tGROUPS\tDISABLED\tCREATED")
		for _, u := range us {
			fmt.Fprintf(t, "%s\t%s\t%v\t%s\n", u.Name, strings.Join(u.Groups, ","), u.Disabled, fmtTime(u.CreatedAt))
		}
		return t.Flush()
	}}
	setDisabled := func(op string) *cobra.Command {
		return &cobra.Command{Use: op + " NAME", Short: strings.ToUpper(op[:1]) + op[1:] + " a user", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			if err := c.call(func(ctx context.Context) error {
				return c.client.SetUserDisabled(ctx, args[0], op == "disable", api.OTPRequest{})
			}); err != nil {
				return err
			}
			fmt.Fprintf(c.out(), "User %s %sd.\n", args[0], op)
			return nil
		}}
	}
	users.AddCommand(addUser, listUsers, setDisabled("disable"), setDisabled("enable"))

	groupsCmd := &cobra.Command{Use: "groups", Short: "Groups"}
	groupsCmd.AddCommand(&cobra.Command{Use: "list", Short: "List groups and members", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var gs map[string][]string
		if err := c.call(func(ctx context.Context) (err error) { gs, err = c.client.Groups(ctx); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(gs)
		}
		names := make([]string, 0, len(gs))
		for g := range gs {
			names = append(names, g)
		}
		sort.Strings(names)
		t := c.table()
		fmt.Fprintln(t, "GROUP\tMEMBERS")
		for _, g := range names {
			fmt.Fprintf(t, "%s\t%s\n", g, strings.Join(gs[g], ", "))
		}
		return t.Flush()
	}})

	resources := &cobra.Command{Use: "resources", Short: "Manage resources"}
	var kind, addr, database string
	var labels, creds, logins, readOnly, databases []string
	var hostKey, sslMode, sslRootCert string
	var publicHost, authHeader string
	var levels, allows, kubeGroups, namespaces []string
	var allowCleartext, ephemeral bool
	var templates []string
	var provisioner, owner string
	var connLimit int
	addRes := &cobra.Command{Use: "add NAME --kind postgres|ssh|http|kubernetes --addr HOST:PORT", Short: "Add a resource",
		Long: `Add a resource. Brokered credentials are given as --credential LEVEL=USER:SOURCE where SOURCE is
env:VAR (read from this shell's environment) or file:PATH; the secret is sent once to the server,
sealed there and never shown again. Example:

  PROD_RO=… airlock admin resources add prod-db --kind postgres --addr db:5432 --database app \
      --allow-database app_archive --sslmode verify-full --sslrootcert db-ca.pem \
      --label env=prod --credential read=app_ro:env:PROD_RO --credential write=app_rw:file:/run/secrets/rw

With --ephemeral a postgres resource holds no standing login: Airlock makes a role per grant, IN
the access level's template role, with the provisioning credential (a role with CREATEROLE), and
drops it at the grant's end after reassigning what it owns to --owner (see docs/postgres.md):

  PROV=… airlock admin resources add prod-db --kind postgres --addr db:5432 --database app --ephemeral \
      --provisioner provisioner:env:PROV --template read=app_read --template write=app_write --owner app_owner

A mysql resource takes --ephemeral too: a user per grant with the level's template role as its
default role, made by an account with CREATE USER, and no --owner (see docs/mysql.md).

An http resource is a web app: --addr is its base URL; each access level either brokers a
secret (--credential LEVEL=:env:VAR sends "Authorization: Bearer SECRET", LEVEL=USER:… basic
auth, --auth-header X-Api-Key the secret alone in that header) or nothing (--level NAME), and
--allow limits a level to some requests:

  GRAFANA_TOKEN=… airlock admin resources add grafana --kind http --addr http://10.0.0.5:3000 \
      --level view --allow 'view=GET,HEAD /' --credential admin=:env:GRAFANA_TOKEN

A kubernetes resource is an API server: --addr is its https URL, --sslrootcert its CA, and each
access level's credential is what Airlock presents to it (a service-account token, or a client
certificate and key in one PEM file) with only the right to impersonate; --kube-group says which
groups a level impersonates and --namespace limits it to some namespaces:

  airlock admin resources add prod-k8s --kind kubernetes --addr https://10.0.0.9:6443 \
      --sslrootcert cluster-ca.pem --credential view=:file:gateway.token --credential edit=:file:gateway.token \
      --kube-group view=airlock:view --kube-group edit=airlock:edit --namespace edit=payments`,
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			in := api.ResourceInput{Name: args[0], Kind: kind, Addr: addr, Labels: map[string]string{}, Credentials: map[string]api.CredentialInput{},
				Options: api.ResourceOptions{Database: database, Databases: databases, Logins: logins, HostKey: hostKey, ReadOnly: readOnly, TLS: sslMode,
					AllowCleartextPassword: allowCleartext, PublicHost: publicHost, Levels: levels, AuthHeader: authHeader}}
			for _, a := range allows {
				level, rule, ok := strings.Cut(a, "=")
				if !ok || level == "" || rule == "" {
					return fmt.Errorf("%w: --allow %q: want LEVEL=METHODS PATH, e.g. --allow 'read=GET,HEAD /'", errUsage, a)
				}
				if in.Options.Allow == nil {
					in.Options.Allow = map[string][]string{}
				}
				in.Options.Allow[level] = append(in.Options.Allow[level], rule)
			}
			for flag, vals := range map[string][]string{"--kube-group": kubeGroups, "--namespace": namespaces} {
				for _, a := range vals {
					level, list, ok := strings.Cut(a, "=")
					if !ok || level == "" || list == "" {
						return fmt.Errorf("%w: %s %q: want LEVEL=NAME[,NAME…]", errUsage, flag, a)
					}
					m := &in.Options.KubeGroups
					if flag == "--namespace" {
						m = &in.Options.Namespaces
					}
					if *m == nil {
						*m = map[string][]string{}
					}
					(*m)[level] = append((*m)[level], strings.Split(list, ",")...)
				}
			}
			if sslRootCert != "" {
				b, err := os.ReadFile(sslRootCert)
				if err != nil {
					return fmt.Errorf("--sslrootcert: %w", err)
				}
				in.Options.TLSCA = string(b)
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("%w: --label %q: want key=value", errUsage, l)
				}
				in.Labels[k] = v
			}
			if ephemeral {
				in.Options.Credentials, in.Options.Owner, in.Options.ConnectionLimit = "ephemeral", owner, connLimit
			}
			for _, tp := range templates {
				level, role, ok := strings.Cut(tp, "=")
				if !ok || level == "" || role == "" {
					return fmt.Errorf("%w: --template %q: want LEVEL=ROLE", errUsage, tp)
				}
				if in.Options.Templates == nil {
					in.Options.Templates = map[string]string{}
				}
				in.Options.Templates[level] = role
			}
			if provisioner != "" {
				user, src, ok := strings.Cut(provisioner, ":")
				if !ok || user == "" {
					return fmt.Errorf("%w: --provisioner %q: want USER:env:VAR or USER:file:PATH", errUsage, provisioner)
				}
				pw, err := readCredentialSource(src)
				if err != nil {
					return fmt.Errorf("--provisioner: %v", err)
				}
				in.Provisioner = &api.CredentialInput{User: user, Password: pw}
			}
			for _, cr := range creds {
				level, rest, ok := strings.Cut(cr, "=")
				user, src, ok2 := strings.Cut(rest, ":")
				if !ok || !ok2 || level == "" || (user == "" && kind != airlock.KindHTTP && kind != airlock.KindKubernetes) {
					return fmt.Errorf("%w: --credential %q: want LEVEL=USER:env:VAR or LEVEL=USER:file:PATH", errUsage, cr)
				}
				pw, err := readCredentialSource(src)
				if err != nil {
					return fmt.Errorf("--credential %s: %v", level, err)
				}
				in.Credentials[level] = api.CredentialInput{User: user, Password: pw}
			}
			var v *api.ResourceView
			if err := c.call(func(ctx context.Context) (err error) { v, err = c.client.AddResource(ctx, in); return err }); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(v)
			}
			fmt.Fprintf(c.out(), "Added %s resource %s at %s (access levels: %s).\n", v.Kind, v.Name, v.Addr, strings.Join(v.AccessLevels, ", "))
			return nil
		}}
	addRes.Flags().StringVar(&kind, "kind", "", "postgres, ssh, http or kubernetes")
	addRes.Flags().StringArrayVar(&kubeGroups, "kube-group", nil, "kubernetes: LEVEL=GROUP[,GROUP…], the Kubernetes groups LEVEL impersonates (repeatable)")
	addRes.Flags().StringArrayVar(&namespaces, "namespace", nil, "kubernetes: LEVEL=NS[,NS…], the only namespaces LEVEL may touch (repeatable; default: all)")
	addRes.Flags().StringVar(&addr, "addr", "", "HOST:PORT of the resource (http: the app's base URL)")
	addRes.Flags().StringVar(&publicHost, "public-host", "", "http: the host the app is served at (default NAME.<apps domain>)")
	addRes.Flags().StringArrayVar(&levels, "level", nil, "http: an access level that brokers no credential (repeatable)")
	addRes.Flags().StringArrayVar(&allows, "allow", nil, "http: LEVEL=METHODS PATH, the only requests LEVEL may send (repeatable), e.g. 'read=GET,HEAD /'")
	addRes.Flags().StringVar(&authHeader, "auth-header", "", "http: header a credential without a user goes in (default: Authorization: Bearer)")
	addRes.Flags().StringVar(&database, "database", "", "postgres: upstream database name (default: the resource name)")
	addRes.Flags().StringArrayVar(&databases, "allow-database", nil, "postgres: another upstream database clients may open as RESOURCE/DB (repeatable; default: only --database)")
	addRes.Flags().BoolVar(&allowCleartext, "allow-cleartext-password", false, "postgres: send the brokered password when the database asks for it in cleartext without a verified TLS certificate (default: refuse)")
	addRes.Flags().BoolVar(&ephemeral, "ephemeral", false, "postgres, mysql: make a database role (user) per grant instead of brokering standing credentials (needs --provisioner, --template; postgres also --owner)")
	addRes.Flags().StringVar(&provisioner, "provisioner", "", "--ephemeral: the provisioning role USER:env:VAR|file:PATH (postgres: CREATEROLE; mysql: CREATE USER, see docs/mysql.md)")
	addRes.Flags().StringArrayVar(&templates, "template", nil, "--ephemeral: LEVEL=ROLE, the template role whose privileges LEVEL's grants get (repeatable)")
	addRes.Flags().StringVar(&owner, "owner", "", "postgres --ephemeral: the role that keeps what a grant's role created when it is dropped")
	addRes.Flags().IntVar(&connLimit, "connection-limit", 0, "--ephemeral: CONNECTION LIMIT (mysql: MAX_USER_CONNECTIONS) of each grant's role (default 10)")
	addRes.Flags().StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	addRes.Flags().StringArrayVar(&creds, "credential", nil, "brokered credential LEVEL=USER:env:VAR|file:PATH (repeatable)")
	addRes.Flags().StringArrayVar(&logins, "login", nil, "ssh: an allowed login (repeatable)")
	addRes.Flags().StringArrayVar(&readOnly, "read-only", nil, "access levels whose sessions start read-only (default: read, ro, readonly)")
	addRes.Flags().StringVar(&hostKey, "host-key", "", "ssh: pinned host key (authorized_keys format)")
	addRes.Flags().StringVar(&sslMode, "sslmode", "", "postgres: TLS to the database: disable (default), require, verify-ca or verify-full")
	addRes.Flags().StringVar(&sslRootCert, "sslrootcert", "", "postgres, https apps, kubernetes: PEM file of the CA certificates the upstream's certificate must chain to (default: system roots)")
	checkRes := &cobra.Command{Use: "check NAME", Short: "Show the provisioning state of a resource with ephemeral credentials, and drift",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			var rc *api.ResourceCheck
			if err := c.call(func(ctx context.Context) (err error) { rc, err = c.client.CheckResource(ctx, args[0]); return err }); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(rc)
			}
			w := c.out()
			if rc.Error != "" {
				fmt.Fprintf(w, "%s: the database could not be inspected: %s\n", rc.Resource, rc.Error)
			} else {
				right := "CREATEROLE"
				if rc.Kind == airlock.KindMySQL {
					right = "CREATE USER"
				}
				fmt.Fprintf(w, "%s: provisioning role %s (%s: %v)\n", rc.Resource, rc.Provisioner, right, rc.CreateRole)
				for _, m := range rc.MissingRights {
					fmt.Fprintf(w, "missing right: %s\n", m)
				}
				for _, m := range rc.Missing {
					fmt.Fprintf(w, "missing role: %s\n", m)
				}
				for _, d := range rc.Drift {
					fmt.Fprintf(w, "drift: %s holds the rights of template %s, and Airlock did not make it\n", d.Role, d.Template)
				}
				for _, r := range rc.Roles {
					state := "live, grant " + r.GrantID
					if !r.Live {
						state = "no live grant: the reconciler drops it"
					}
					fmt.Fprintf(w, "role %s: %s\n", r.Role, state)
				}
			}
			for _, g := range rc.Pending {
				fmt.Fprintf(w, "grant %s ended; its role is not dropped yet (retrying)\n", g)
			}
			if rc.Error == "" && len(rc.Missing) == 0 && len(rc.MissingRights) == 0 && len(rc.Drift) == 0 && rc.CreateRole && len(rc.Pending) == 0 {
				fmt.Fprintln(w, "ok")
			}
			return nil
		}}
	listRes := &cobra.Command{Use: "list", Short: "List resources", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var rs []api.ResourceView
		if err := c.call(func(ctx context.Context) (err error) { rs, err = c.client.AdminResources(ctx); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(rs)
		}
		t := c.table()
		fmt.Fprintln(t, "NAME\tKIND\tADDR\tACCESS LEVELS\tLABELS\tSOURCE")
		for _, r := range rs {
			var ls []string
			for k, v := range r.Labels {
				ls = append(ls, k+"="+v)
			}
			sort.Strings(ls)
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.Addr, strings.Join(r.AccessLevels, ","), strings.Join(ls, ","), r.Source)
		}
		return t.Flush()
	}}
	rmRes := &cobra.Command{Use: "rm NAME", Short: "Remove a resource", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		c.otp = otp
		if err := c.call(func(ctx context.Context) error { return c.client.RemoveResource(ctx, args[0]) }); err != nil {
			return err
		}
		fmt.Fprintf(c.out(), "Removed resource %s.\n", args[0])
		return nil
	}}
	rotateRes := &cobra.Command{Use: "rotate NAME [--otp CODE]", Short: "Rotate the provisioning credential of a resource with ephemeral credentials on its database",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			if err := c.call(func(ctx context.Context) error { return c.client.RotateProvisioner(ctx, args[0], api.OTPRequest{}) }); err != nil {
				return err
			}
			fmt.Fprintf(c.out(), "Rotated the provisioning credential of %s: the old password no longer works on the database.\n", args[0])
			return nil
		}}
	resources.AddCommand(addRes, listRes, rmRes, checkRes, rotateRes)

	ca := &cobra.Command{Use: "ca", Short: "Print the gateway TLS CA certificate (for sslrootcert)", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		info, err := c.client.Info(c.ctx())
		if err != nil {
			return err
		}
		fmt.Fprint(c.out(), info.TLSCA)
		return nil
	}}
	admin.AddCommand(users, groupsCmd, resources, ca, newSSHCACmd())
	return admin
}

func readCredentialSource(src string) (string, error) {
	kind, ref, ok := strings.Cut(src, ":")
	switch {
	case ok && kind == "env":
		v := os.Getenv(ref)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", ref)
		}
		return v, nil
	case ok && kind == "file":
		b, err := os.ReadFile(ref)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", fmt.Errorf("source %q: use env:VAR or file:PATH (secrets are never passed on the command line)", src)
}

func newSSHCACmd() *cobra.Command {
	info := func(cmd *cobra.Command) (*api.GatewayInfo, error) {
		c, err := newCLI(cmd)
		if err != nil {
			return nil, err
		}
		return c.client.Info(c.ctx())
	}
	cmd := &cobra.Command{Use: "ssh-ca", Short: "Print what a target host and clients need to trust Airlock's SSH CAs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gi, err := info(cmd)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# 1. on each target host: the user CA key\n%s\n\n# 2. in its sshd_config\n%s\n# 3. clients' known_hosts (for the gateway's host certificate)\n@cert-authority * %s\n",
				strings.TrimSpace(gi.SSHUserCA), sshca.SSHDConfig(false)+"# optional: AuthorizedPrincipalsFile "+sshca.PrincipalsFilePath+"\n", strings.TrimSpace(gi.SSHHostCA))
			return nil
		}}
	cmd.AddCommand(&cobra.Command{Use: "user-key", Short: "Print the user CA public key (for TrustedUserCAKeys)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gi, err := info(cmd)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(gi.SSHUserCA))
			return nil
		}},
		&cobra.Command{Use: "sshd-config", Short: "Print the sshd_config lines a target host needs", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				fmt.Fprint(cmd.OutOrStdout(), sshca.SSHDConfig(false)+"# optional: AuthorizedPrincipalsFile "+sshca.PrincipalsFilePath+"\n")
				return nil
			}},
		&cobra.Command{Use: "known-hosts", Short: "Print the @cert-authority line clients need for the gateway", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				gi, err := info(cmd)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "@cert-authority * %s\n", strings.TrimSpace(gi.SSHHostCA))
				return nil
			}})
	return cmd
}
