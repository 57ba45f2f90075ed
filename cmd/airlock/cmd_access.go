package main

import (
	"context"
	"fmt"
	"github.com/airlockhq/airlock/sqlguard"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/policy"
)

func init() {
	register(func() []*cobra.Command {
		return []*cobra.Command{newPolicyCmd(), newResourcesCmd(), newRequestCmd(), newRequestsCmd(), newReviewCmd("approve"), newReviewCmd("deny"),
			newGrantsCmd(), newRevokeCmd(), newBreakGlassCmd(), newAckCmd()}
	})
}

func loadPolicyFiles(path string) (map[string]string, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: -f FILE_OR_DIR is required", errUsage)
	}
	raw, err := policy.Load(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range raw {
		out[k] = string(v)
	}
	return out, nil
}

func newPolicyCmd() *cobra.Command {
	pc := &cobra.Command{Use: "policy", Short: "Policy as code: check, apply, show, test"}
	var file, otp string
	check := &cobra.Command{Use: "check -f FILE_OR_DIR", Short: "Validate policy files (offline; names file:line for each problem)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := loadPolicyFiles(file)
			if err != nil {
				return err
			}
			raw := map[string][]byte{}
			for k, v := range files {
				raw[k] = []byte(v)
			}
			_, diags, perr := policy.Parse(raw)
			for _, d := range diags {
				fmt.Fprintln(cmd.OutOrStdout(), d.String())
			}
			if perr != nil {
				return &exitError{code: 1, err: fmt.Errorf("policy check failed")}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "policy OK")
			return nil
		}}
	check.Flags().StringVarP(&file, "file", "f", "", "policy file or directory")
	apply := &cobra.Command{Use: "apply -f FILE_OR_DIR", Short: "Apply policy files as the next version (refused if invalid)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			files, err := loadPolicyFiles(file)
			if err != nil {
				return err
			}
			var res *api.CheckResult
			if err := c.call(func(ctx context.Context) (err error) {
				res, err = c.client.ApplyPolicy(ctx, api.PolicyFiles{Files: files})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			for _, d := range res.Diagnostics {
				fmt.Fprintln(c.out(), d)
			}
			for _, d := range res.Diff {
				fmt.Fprintln(c.out(), d)
			}
			fmt.Fprintf(c.out(), "Applied policy version %d.\n", res.Version)
			return nil
		}}
	apply.Flags().StringVarP(&file, "file", "f", "", "policy file or directory")
	apply.Flags().StringVar(&otp, "otp", "", "a current MFA code (always verified, fresh MFA or not)")
	show := &cobra.Command{Use: "show", Short: "Print the policy in force", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var info *api.PolicyInfo
		if err := c.call(func(ctx context.Context) (err error) { info, err = c.client.Policy(ctx); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(info)
		}
		if info.Version == 0 {
			fmt.Fprintln(c.out(), "No policy applied: everything is denied. Apply one with `airlock policy apply -f FILE`.")
			return nil
		}
		fmt.Fprintf(c.out(), "# version %d, applied by %s at %s, sha256 %s\n", info.Version, info.AppliedBy, fmtTime(info.AppliedAt), info.SHA256)
		names := make([]string, 0, len(info.Files))
		for n := range info.Files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(c.out(), "# --- %s\n%s\n", n, info.Files[n])
		}
		return nil
	}}
	var cases string
	test := &cobra.Command{Use: "test -f CASES [--policy FILE_OR_DIR]", Short: "Run a table of policy test cases (offline)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			polPath, _ := cmd.Flags().GetString("policy")
			if polPath == "" {
				polPath = "."
			}
			files, err := policy.Load(polPath)
			if err != nil {
				return err
			}
			p, diags, err := policy.Parse(files)
			if err != nil {
				for _, d := range diags {
					fmt.Fprintln(cmd.OutOrStdout(), d.String())
				}
				return err
			}
			raw, err := os.ReadFile(cases)
			if err != nil {
				return err
			}
			cs, err := policy.ParseCases(cases, raw)
			if err != nil {
				return err
			}
			results := policy.RunCases(p, cs, nil, decideStatement)
			failed := 0
			for _, r := range results {
				status := "PASS"
				if !r.Pass {
					status = "FAIL"
					failed++
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  (%s:%d) %s\n", status, r.Case.Name, r.Case.File, r.Case.Line, r.Message)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d passed, %d failed\n", len(results)-failed, failed)
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d policy test case(s) failed", failed)}
			}
			return nil
		}}
	test.Flags().StringVarP(&cases, "file", "f", "", "cases file")
	test.Flags().String("policy", "", "policy file or directory (default: the current directory)")
	pc.AddCommand(check, apply, show, test)
	return pc
}

func newResourcesCmd() *cobra.Command {
	return &cobra.Command{Use: "resources", Short: "What you may request, and what you hold now", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var res *api.Requestable
		if err := c.call(func(ctx context.Context) (err error) { res, err = c.client.Resources(ctx); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(res)
		}
		t := c.table()
		fmt.Fprintln(t, "RESOURCE\tACCESS\tMAX\tAPPROVAL\tRULE")
		for _, e := range res.Entitlements {
			appr := "needs approval"
			if e.AutoApprove {
				appr = "auto-approve possible"
			}
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", e.Resource, e.Access, e.MaxDuration, appr, e.Rule)
		}
		t.Flush()
		fmt.Fprintln(c.out())
		printGrants(c, res.Held)
		return nil
	}}
}

func printGrants(c *cli, gs []api.GrantView) {
	if len(gs) == 0 {
		fmt.Fprintln(c.out(), "No grants.")
		return
	}
	t := c.table()
	fmt.Fprintln(t, "GRANT\tUSER\tRESOURCE\tACCESS\tSTATE\tENDS\tLEFT\tFLAGS")
	for _, g := range gs {
		flags := ""
		if g.BreakGlass {
			flags = "break-glass"
			if g.AckedAt.IsZero() {
				flags += " (unacknowledged)"
			}
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.UserName, g.Resource, g.Access, g.State, fmtTime(g.EndsAt), fmtLeft(g.SecondsLeft), flags)
	}
	t.Flush()
}

func requestFlags(cmd *cobra.Command, in *api.RequestInput, dur, start *string) {
	cmd.Flags().StringVar(&in.Access, "access", "", "access level (postgres credential, ssh login)")
	cmd.Flags().StringVar(dur, "for", "", "duration, e.g. 30m or 1h")
	cmd.Flags().StringVar(&in.Reason, "reason", "", "why you need access")
	cmd.Flags().StringVar(&in.Ticket, "ticket", "", "ticket or incident ID")
	if start != nil {
		cmd.Flags().StringVar(start, "start", "", "scheduled start (RFC 3339, e.g. 2026-11-28T09:00:00Z)")
	}
}

func parseRequest(in *api.RequestInput, resource, dur, start string) error {
	in.Resource = resource
	if dur != "" {
		d, err := time.ParseDuration(dur)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: --for %q: use a duration like 30m or 1h", errUsage, dur)
		}
		in.Duration = d
	}
	if start != "" {
		t, err := time.Parse(time.RFC3339, start)
		if err != nil {
			return fmt.Errorf("%w: --start %q: use RFC 3339, e.g. 2026-11-28T09:00:00Z", errUsage, start)
		}
		in.StartAt = t
	}
	return nil
}

func newRequestCmd() *cobra.Command {
	var in api.RequestInput
	var dur, start string
	var wait bool
	cmd := &cobra.Command{Use: "request RESOURCE --access LEVEL --for DURATION --reason TEXT", Short: "Ask for access to a resource", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if err := parseRequest(&in, args[0], dur, start); err != nil {
				return err
			}
			var res *api.RequestResult
			if err := c.call(func(ctx context.Context) (err error) { res, err = c.client.CreateRequest(ctx, in); return err }); err != nil {
				return err
			}
			if in.DryRun {
				if c.json() {
					return c.printJSON(res.DryRun)
				}
				d := res.DryRun
				fmt.Fprintf(c.out(), "allowed:        %v (%s)\nrule:           %s\nmax duration:   %s\napprovals:      %d from %s\napprovers:      %s\nauto-approve:   %v\nreason needed:  %v %s\nbreak-glass:    %v\n",
					d.Allowed, d.Why, d.Rule, d.MaxDuration, d.RequiredApprovals, strings.Join(d.ApproverGroups, ", "), strings.Join(d.Approvers, ", "),
					d.AutoApprove, d.ReasonRequired, d.ReasonPrompt, d.BreakGlass)
				return nil
			}
			if res.Grant == nil && wait {
				if !c.json() {
					fmt.Fprintf(c.errw(), "Request %s is pending; waiting for approval (Ctrl-C leaves it pending)…\n", res.Request.ID)
				}
				return waitForRequest(c, res.Request.ID)
			}
			if c.json() {
				return c.printJSON(res)
			}
			printRequestResult(c, res)
			return nil
		}}
	requestFlags(cmd, &in, &dur, &start)
	cmd.Flags().BoolVar(&in.DryRun, "dry-run", false, "show which rule matches, who can approve and limits; file nothing")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the request is decided")
	cmd.Flags().StringVar(&in.ExtendsGrantID, "extends", "", "grant ID this request extends")
	return cmd
}

func printRequestResult(c *cli, res *api.RequestResult) {
	r := res.Request
	if res.Grant != nil {
		g := res.Grant
		fmt.Fprintf(c.out(), "Granted: %s %s on %s until %s (%s left). Grant %s.\n", g.UserName, g.Access, g.Resource, fmtTime(g.EndsAt),
			fmtLeft(int64(time.Until(g.EndsAt).Seconds())), g.ID)
		return
	}
	fmt.Fprintf(c.out(), "Request %s is %s: %s %s on %s for %s. Needs %d approval(s) from %s.\n", r.ID, r.State, r.UserName, r.Access, r.Resource,
		r.Duration, max(r.RequiredApprovals, 1), strings.Join(r.ApproverGroups, ", "))
}

func waitForRequest(c *cli, id string) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	last := ""
	for {
		var v *api.RequestView
		if err := c.call(func(ctx context.Context) (err error) { v, err = c.client.Request(ctx, id); return err }); err != nil {
			return err
		}
		if v.State != last && !c.json() {
			fmt.Fprintf(c.errw(), "  %s: %s (%d review(s))\n", time.Now().Format("15:04:05"), v.State, len(v.Reviews))
			last = v.State
		}
		if v.State != airlock.RequestPending {
			res := api.RequestResult{Request: v.AccessRequest}
			if v.GrantID != "" {
				var gs []api.GrantView
				if err := c.call(func(ctx context.Context) (err error) { gs, err = c.client.Grants(ctx, false); return err }); err == nil {
					for _, g := range gs {
						if g.ID == v.GrantID {
							res.Grant = g.Grant
						}
					}
				}
			}
			if c.json() {
				return c.printJSON(res)
			}
			printRequestResult(c, &res)
			if v.State != airlock.RequestApproved {
				return &exitError{code: 1, err: fmt.Errorf("request %s was %s", id, v.State)}
			}
			return nil
		}
		select {
		case <-sig:
			fmt.Fprintf(c.errw(), "\nStopped waiting; request %s stays pending.\n", id)
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func newRequestsCmd() *cobra.Command {
	var mine, toReview, reviewNeeded bool
	cmd := &cobra.Command{Use: "requests [--mine | --to-review | --review-needed]", Short: "List access requests", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			f := api.RequestsFilter{Mine: mine, ToReview: toReview, ReviewNeeded: reviewNeeded}
			var rs []api.RequestView
			if err := c.call(func(ctx context.Context) (err error) { rs, err = c.client.Requests(ctx, f); return err }); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(rs)
			}
			if len(rs) == 0 {
				fmt.Fprintln(c.out(), "No requests.")
				return nil
			}
			t := c.table()
			fmt.Fprintln(t, "ID\tUSER\tRESOURCE\tACCESS\tFOR\tSTATE\tAPPROVALS\tREASON\tCREATED")
			for _, r := range rs {
				n := 0
				for _, rv := range r.Reviews {
					if rv.Decision == airlock.DecisionApprove {
						n++
					}
				}
				state := r.State
				if r.BreakGlass {
					state += " (break-glass)"
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.UserName, r.Resource, r.Access, r.Duration, state, n, max(r.RequiredApprovals, 1), r.Reason, fmtTime(r.CreatedAt))
			}
			return t.Flush()
		}}
	cmd.Flags().BoolVar(&mine, "mine", false, "only your requests")
	cmd.Flags().BoolVar(&toReview, "to-review", false, "pending requests you may review")
	cmd.Flags().BoolVar(&reviewNeeded, "review-needed", false, "break-glass grants awaiting acknowledgement")
	return cmd
}

func newReviewCmd(decision string) *cobra.Command {
	var comment, otp string
	cmd := &cobra.Command{Use: decision + " ID [--comment TEXT]", Short: strings.ToUpper(decision[:1]) + decision[1:] + " an access request (needs fresh MFA)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			var res *api.RequestResult
			if err := c.call(func(ctx context.Context) (err error) {
				res, err = c.client.Review(ctx, args[0], decision, api.ReviewInput{Comment: comment})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			if res.Grant != nil {
				fmt.Fprintf(c.out(), "Approved. Grant %s: %s %s on %s until %s.\n", res.Grant.ID, res.Grant.UserName, res.Grant.Access, res.Grant.Resource, fmtTime(res.Grant.EndsAt))
				return nil
			}
			fmt.Fprintf(c.out(), "Request %s is %s.\n", res.Request.ID, res.Request.State)
			return nil
		}}
	cmd.Flags().StringVar(&comment, "comment", "", "a comment for the requester and the audit log")
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	return cmd
}

func newGrantsCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{Use: "grants [--all]", Short: "List your grants (admins: --all)", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		c, err := newCLI(cmd)
		if err != nil {
			return err
		}
		var gs []api.GrantView
		if err := c.call(func(ctx context.Context) (err error) { gs, err = c.client.Grants(ctx, all); return err }); err != nil {
			return err
		}
		if c.json() {
			return c.printJSON(gs)
		}
		printGrants(c, gs)
		return nil
	}}
	cmd.Flags().BoolVar(&all, "all", false, "everyone's grants (admins)")
	return cmd
}

func newRevokeCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{Use: "revoke GRANT_ID [--reason TEXT]", Short: "End a grant now; its live sessions are cut", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			var g *airlock.Grant
			if err := c.call(func(ctx context.Context) (err error) {
				g, err = c.client.RevokeGrant(ctx, args[0], api.RevokeRequest{Reason: reason})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(g)
			}
			fmt.Fprintf(c.out(), "Revoked grant %s (%s %s on %s).\n", g.ID, g.UserName, g.Access, g.Resource)
			return nil
		}}
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}

func newBreakGlassCmd() *cobra.Command {
	var in api.RequestInput
	var dur string
	cmd := &cobra.Command{Use: "break-glass RESOURCE --access LEVEL --for DURATION --reason TEXT", Short: "Emergency access without approval, where policy allows (alerts approvers)",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if err := parseRequest(&in, args[0], dur, ""); err != nil {
				return err
			}
			c.otp = in.OTP
			in.OTP = ""
			var res *api.RequestResult
			if err := c.call(func(ctx context.Context) (err error) { res, err = c.client.BreakGlass(ctx, in); return err }); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			printRequestResult(c, res)
			fmt.Fprintln(c.out(), "Approvers were alerted; this grant is flagged until one of them acknowledges it.")
			return nil
		}}
	requestFlags(cmd, &in, &dur, nil)
	cmd.Flags().StringVar(&in.OTP, "otp", "", "a current MFA code (step-up)")
	return cmd
}

func newAckCmd() *cobra.Command {
	var comment, otp string
	cmd := &cobra.Command{Use: "acknowledge GRANT_ID [--comment TEXT]", Aliases: []string{"ack"}, Short: "Acknowledge (post-hoc review) a break-glass grant",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			c.otp = otp
			var g *airlock.Grant
			if err := c.call(func(ctx context.Context) (err error) {
				g, err = c.client.AckGrant(ctx, args[0], api.AckRequest{Comment: comment})
				return err
			}); err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(g)
			}
			fmt.Fprintf(c.out(), "Acknowledged break-glass grant %s.\n", g.ID)
			return nil
		}}
	cmd.Flags().StringVar(&comment, "comment", "", "review notes")
	cmd.Flags().StringVar(&otp, "otp", "", "a current MFA code (step-up)")
	return cmd
}

// decideStatement runs a policy test case's statement through the
// gateway's own parser and rules (sqlguard).
func decideStatement(rules *policy.Statements, text string) (string, string) {
	stmts, err := caseParser().Parse(text)
	v := sqlguard.Decide(rules, stmts, err, nil)
	return v.Action, v.Rule
}

// caseParser is the one statement parser policy test cases share.
var caseParser = sync.OnceValue(func() *sqlguard.Parser { return sqlguard.NewParser(0) })
