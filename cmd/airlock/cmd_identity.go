package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/auth"
)

func init() { register(identityCommands) }

func identityCommands() []*cobra.Command {
	return []*cobra.Command{newBootstrapCmd(), newLoginCmd(), newLogoutCmd(), newWhoamiCmd(), newMFACmd()}
}

func newBootstrapCmd() *cobra.Command {
	var tokenFile, user string
	var pwStdin bool
	cmd := &cobra.Command{
		Use:   "bootstrap --token-file F --user NAME [--password-stdin]",
		Short: "Create the first admin with the server's one-time bootstrap token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if tokenFile == "" || user == "" {
				return fmt.Errorf("%w: --token-file and --user are required", errUsage)
			}
			tok, err := os.ReadFile(tokenFile)
			if err != nil {
				return fmt.Errorf("read %s: %v; the server writes it to DATA_DIR/bootstrap.token on first start", tokenFile, err)
			}
			pw, err := readPassword(c, pwStdin, true)
			if err != nil {
				return err
			}
			u, err := c.client.Bootstrap(c.ctx(), api.BootstrapRequest{Token: strings.TrimSpace(string(tok)), User: user, Password: pw})
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(u)
			}
			fmt.Fprintf(c.out(), "Created admin %s. Next: `airlock login --user %s`, then enroll a second factor with `airlock mfa add totp`.\n", u.Name, u.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "path of DATA_DIR/bootstrap.token")
	cmd.Flags().StringVar(&user, "user", "", "name of the first admin")
	cmd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func readPassword(c *cli, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		return readSecretStdin()
	}
	pw, err := c.prompt("Password: ", true)
	if err != nil {
		return "", fmt.Errorf("%w: no terminal; pass --password-stdin", errUsage)
	}
	if confirm {
		again, err := c.prompt("Password again: ", true)
		if err != nil || again != pw {
			return "", errors.New("passwords do not match")
		}
	}
	return pw, nil
}

func newLoginCmd() *cobra.Command {
	var user, otp string
	var pwStdin, web, sso bool
	cmd := &cobra.Command{
		Use:   "login [--user NAME] [--password-stdin] [--otp CODE] [--web | --sso]",
		Short: "Log in with your password and second factor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if web {
				return webLogin(c)
			}
			var res *api.LoginResponse
			if sso {
				res, err = ssoLogin(c)
			} else {
				res, err = passwordLogin(c, user, pwStdin, otp)
			}
			var ae *airlock.Error
			if errors.As(err, &ae) && ae.Code == airlock.EMFAREQUIRED {
				challenge, _ := ae.Details["challenge"].(string)
				code := otp
				if code == "" {
					if code, err = c.prompt("Second factor code: ", false); err != nil {
						return fmt.Errorf("%w: a second factor is required; pass --otp CODE", errUsage)
					}
				}
				res, err = c.client.LoginFactor(c.ctx(), api.LoginFactorRequest{Challenge: challenge, FactorInput: api.FactorInput{OTP: code}})
			}
			if err != nil {
				return err
			}
			if err := saveState(&clientState{Server: global.server, User: res.User.Name, Token: res.Token, ExpiresAt: res.ExpiresAt}); err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			if c.json() {
				res.Token = ""
				return c.printJSON(res)
			}
			fmt.Fprintf(c.out(), "Logged in as %s (session until %s).\n", res.User.Name, fmtTime(res.ExpiresAt))
			if res.NeedsEnrollment {
				fmt.Fprintln(c.out(), "You have no second factor yet: enroll one now with `airlock mfa add totp`.")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "user name")
	cmd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin")
	cmd.Flags().StringVar(&otp, "otp", "", "TOTP or recovery code (for scripts)")
	cmd.Flags().BoolVar(&web, "web", false, "log in in the browser (passkeys, security keys)")
	cmd.Flags().BoolVar(&sso, "sso", false, "log in with the organisation's identity provider (OIDC) in a browser")
	return cmd
}

// passwordLogin sends the first login step. An mfa_required error carries
// the challenge for the second step.
func passwordLogin(c *cli, user string, pwStdin bool, otp string) (*api.LoginResponse, error) {
	var err error
	if user == "" {
		user = c.state.User
	}
	if user == "" {
		if user, err = c.prompt("User: ", false); err != nil {
			return nil, fmt.Errorf("%w: pass --user NAME", errUsage)
		}
	}
	pw, err := readPassword(c, pwStdin, false)
	if err != nil {
		return nil, err
	}
	return c.client.Login(c.ctx(), api.LoginRequest{User: user, Password: pw, FactorInput: api.FactorInput{OTP: otp}})
}

// ssoLogin prints the identity provider's sign-in URL and polls until the
// browser finishes; the poll token never leaves this process but in the
// URL the user opens themselves.
func ssoLogin(c *cli) (*api.LoginResponse, error) {
	poll, _ := auth.NewToken("sso")
	link := c.client.OIDCStartURL(poll)
	fmt.Fprintf(c.errw(), "Open this link in your browser to sign in with your identity provider:\n\n  %s\n\nWaiting…\n", link)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		res, err := c.client.OIDCPoll(c.ctx(), api.OIDCPollRequest{Poll: poll})
		if airlock.ErrorCode(err) != airlock.ENOTFOUND {
			return res, err
		}
		if time.Now().After(deadline) {
			return nil, errors.New("single sign-on did not complete within 10 minutes; run `airlock login --sso` again")
		}
		select {
		case <-c.ctx().Done():
			return nil, c.ctx().Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End your login session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			err = c.client.Logout(c.ctx())
			c.state.Token = ""
			if serr := saveState(c.state); serr != nil {
				return serr
			}
			if err != nil && airlock.ErrorCode(err) != airlock.EUNAUTHORIZED {
				return err
			}
			fmt.Fprintln(c.out(), "Logged out.")
			return nil
		},
	}
}

func newWhoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who you are logged in as, your groups and MFA freshness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			w, err := c.client.WhoAmI(c.ctx())
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(w)
			}
			fmt.Fprintf(c.out(), "user:     %s\ngroups:   %s\nsession:  until %s\n", w.User.Name, strings.Join(w.User.Groups, ", "), fmtTime(w.ExpiresAt))
			if !w.Enrolled {
				fmt.Fprintln(c.out(), "mfa:      none enrolled — run `airlock mfa add totp`")
				return nil
			}
			fmt.Fprintf(c.out(), "mfa:      %s, %s ago\n", w.MFAMethod, (time.Duration(w.MFAAgeSecs) * time.Second).String())
			for _, a := range []string{"approve", "connect", "factors", "admin"} {
				state := "stale (run `airlock mfa verify`)"
				if w.FreshFor[a] > 0 {
					state = "fresh for " + (time.Duration(w.FreshFor[a]) * time.Second).String()
				}
				fmt.Fprintf(c.out(), "  %-8s %s\n", a+":", state)
			}
			return nil
		},
	}
}

func newMFACmd() *cobra.Command {
	m := &cobra.Command{Use: "mfa", Short: "Manage your second factors"}
	var otp string
	list := &cobra.Command{Use: "list", Short: "List your factors", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var fs []airlock.Factor
		if err := c.call(func(ctx context.Context) (err error) { fs, err = c.client.Factors(ctx); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(fs)
		}
		t := c.table()
		fmt.Fprintln(t, "ID\tKIND\tNAME\tSTATUS\tCREATED\tLAST USED")
		for _, f := range fs {
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Kind, f.Name, f.Status, fmtTime(f.CreatedAt), fmtTime(f.LastUsedAt))
		}
		return t.Flush()
	}}
	add := &cobra.Command{Use: "add", Short: "Enroll a factor"}
	var name string
	addTOTP := &cobra.Command{Use: "totp", Short: "Enroll an authenticator app (prints an otpauth URI and QR code)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			var res *api.TOTPEnrollResponse
			if err := c.call(func(ctx context.Context) (err error) {
				res, err = c.client.EnrollTOTP(ctx, api.TOTPEnrollRequest{Name: name})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			fmt.Fprintf(c.out(), "%s\n%s\n\nScan the code or add the URI to your authenticator, then confirm:\n  airlock mfa confirm %s --otp CODE\n", res.QR, res.URI, res.Factor.ID)
			return nil
		}}
	addTOTP.Flags().StringVar(&name, "name", "authenticator", "a name for this factor")
	addTOTP.Flags().StringVar(&otp, "otp", "", "current code of an existing factor (always verified, fresh MFA or not)")
	addWebAuthn := &cobra.Command{Use: "webauthn", Short: "Enroll a passkey or security key in the browser", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if c.client.Token == "" {
				return airlock.Errorf(airlock.EUNAUTHORIZED, "not logged in: run `airlock login`")
			}
			// The console registers keys for its own signed-in session; no
			// token ever travels in a URL.
			fmt.Fprintf(c.out(), "Open the console in a browser on this machine, sign in, and choose \"Add passkey\":\n\n  %s/factors\n\nThen check with `airlock mfa list`.\n", strings.TrimRight(global.server, "/"))
			return nil
		}}
	add.AddCommand(addTOTP, addWebAuthn)
	confirm := &cobra.Command{Use: "confirm ID --otp CODE", Short: "Confirm a pending TOTP factor", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if otp == "" {
				if otp, err = c.prompt("Code from your authenticator: ", false); err != nil {
					return fmt.Errorf("%w: pass --otp CODE", errUsage)
				}
			}
			if err := c.client.ConfirmFactor(c.ctx(), args[0], api.OTPRequest{OTP: otp}); err != nil {
				return err
			}
			fmt.Fprintf(c.out(), "Factor %s is active. Save recovery codes with `airlock mfa recovery-codes`.\n", args[0])
			return nil
		}}
	confirm.Flags().StringVar(&otp, "otp", "", "code from the authenticator")
	remove := &cobra.Command{Use: "remove ID", Short: "Remove a factor (not your last one)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			if err := c.call(func(ctx context.Context) error { return c.client.RemoveFactor(ctx, args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(c.out(), "Removed factor %s.\n", args[0])
			return nil
		}}
	remove.Flags().StringVar(&otp, "otp", "", "a current code (always verified, fresh MFA or not)")
	recovery := &cobra.Command{Use: "recovery-codes", Short: "Generate 10 new single-use recovery codes (the old set stops working)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			var res *api.RecoveryCodes
			if err := c.call(func(ctx context.Context) (err error) {
				res, err = c.client.RecoveryCodes(ctx, api.OTPRequest{})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			fmt.Fprintln(c.out(), "Store these somewhere safe; each works once:")
			for _, code := range res.Codes {
				fmt.Fprintln(c.out(), "  "+code)
			}
			return nil
		}}
	recovery.Flags().StringVar(&otp, "otp", "", "a current code (always verified, fresh MFA or not)")
	verify := &cobra.Command{Use: "verify [--otp CODE]", Short: "Refresh your MFA freshness (step-up)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if otp == "" {
				if otp, err = c.prompt("MFA code: ", false); err != nil {
					return fmt.Errorf("%w: pass --otp CODE", errUsage)
				}
			}
			w, err := c.client.VerifyMFA(c.ctx(), api.FactorInput{OTP: otp})
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(w)
			}
			fmt.Fprintf(c.out(), "MFA verified (%s).\n", w.MFAMethod)
			return nil
		}}
	verify.Flags().StringVar(&otp, "otp", "", "TOTP or recovery code")
	m.AddCommand(list, add, confirm, remove, recovery, verify)
	return m
}

// webLogin signs the CLI in through the browser: the server returns a URL
// with a short user code and a poll token (kept here, never in a URL);
// the user signs in in the browser (password + passkey) and approves the
// code; the CLI polls until then and stores the session like `login`.
func webLogin(c *cli) error {
	st, err := c.client.WebLoginStart(c.ctx())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.errw(), "Open this page in your browser, sign in and approve the code %s:\n\n  %s\n\nWaiting for the browser…\n", st.UserCode, st.URL)
	interval := time.Duration(max(1, st.IntervalSeconds)) * time.Second
	for {
		res, err := c.client.WebLoginPoll(c.ctx(), api.WebLoginPoll{PollToken: st.PollToken})
		if err != nil {
			return err
		}
		if res != nil {
			if err := saveState(&clientState{Server: global.server, User: res.User.Name, Token: res.Token, ExpiresAt: res.ExpiresAt}); err != nil {
				return fmt.Errorf("save session: %w", err)
			}
			if c.json() {
				res.Token = ""
				return c.printJSON(res)
			}
			fmt.Fprintf(c.out(), "Logged in as %s with %s (session until %s).\n", res.User.Name, res.MFAMethod, fmtTime(res.ExpiresAt))
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-c.ctx().Done():
			t.Stop()
			return c.ctx().Err()
		case <-t.C:
		}
	}
}
