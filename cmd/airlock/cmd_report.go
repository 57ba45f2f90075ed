package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/api"
	"github.com/airlockhq/airlock/report"
)

func init() { register(func() []*cobra.Command { return []*cobra.Command{newReportCmd()} }) }

func newReportCmd() *cobra.Command {
	rc := &cobra.Command{Use: "report", Short: "Reports for auditors"}
	var since, until, format, outFile string
	access := &cobra.Command{Use: "access [--since DURATION] [--format csv|json|html] [-o FILE]",
		Short: "Who held which access to what and when, approved by whom, what they did, and eligibility never used",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newCLI(cmd)
			if err != nil {
				return err
			}
			if !slices.Contains(report.Formats, format) {
				return fmt.Errorf("%w: --format %q: want csv, json or html", errUsage, format)
			}
			now := time.Now()
			q := api.ReportQuery{Format: format}
			if q.Since, err = sinceFlag(since, now); err != nil {
				return fmt.Errorf("%w: --since: %v", errUsage, err)
			}
			if until != "" {
				if q.Until, err = sinceFlag(until, now); err != nil {
					return fmt.Errorf("%w: --until: %v", errUsage, err)
				}
			}
			body, err := c.client.AccessReport(c.ctx(), q)
			if err != nil {
				return err
			}
			return writeOut(c, outFile, body)
		}}
	access.Flags().StringVar(&since, "since", "90d", "start: a duration before now (90d, 12h) or an RFC 3339 time")
	access.Flags().StringVar(&until, "until", "", "end (default now): a duration before now or an RFC 3339 time")
	access.Flags().StringVar(&format, "format", report.FormatJSON, "csv, json or html (one self-contained page)")
	access.Flags().StringVarP(&outFile, "out", "o", "", "write to FILE instead of stdout")
	rc.AddCommand(access)
	return rc
}

// sinceFlag reads a time flag written as a duration before now ("90d",
// "12h") or an RFC 3339 time.
func sinceFlag(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := airlock.ParseDuration(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration like 90d nor an RFC 3339 time", v)
	}
	return now.Add(-d), nil
}
