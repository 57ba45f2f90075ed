package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/access"
	"github.com/airlockhq/airlock/notify"
	"github.com/airlockhq/airlock/policy"
)

// notifier connects the access service's notifications to the notify
// package, keeping its channels in step with the policy in force.
type notifier struct {
	n         *notify.Notifier
	publicURL string
	policy    func() (*policy.Policy, int64)

	mu      sync.Mutex
	version int64
}

// newNotifier returns the server's notifier. Its client never follows
// redirects and refuses link-local and cloud-metadata targets unless
// allowLinkLocal (--webhook-allow-link-local); channel secrets resolve
// through resolve (the server's credential sources, as for resources).
func newNotifier(al airlock.Auditor, logger *slog.Logger, publicURL string, allowLinkLocal bool, now func() time.Time, resolve func(string) (string, error)) *notifier {
	client := notify.NewHTTPClient(notify.ClientOptions{Timeout: 10 * time.Second, AllowLinkLocal: allowLinkLocal})
	return &notifier{n: notify.New(nil, resolve, al, client, logger.With("component", "notify"), now),
		publicURL: publicURL}
}

func (n *notifier) send(ctx context.Context, channels []string, m access.Notification) {
	if len(channels) == 0 {
		return
	}
	if n.policy != nil {
		n.mu.Lock()
		if p, v := n.policy(); v != n.version {
			n.n.SetChannels(p.Notify)
			n.version = v
		}
		n.mu.Unlock()
	}
	msg := notify.Message{Kind: m.Kind, RequestID: m.RequestID, GrantID: m.GrantID, User: m.User, Resource: m.Resource, Access: m.Access,
		Duration: m.Duration, Reason: m.Reason, Ticket: m.Ticket, ConsoleURL: m.URL,
		HoldID: m.HoldID, Statement: m.Statement}
	if m.RequestID != "" {
		msg.ApproveURL = n.publicURL + "/requests/" + m.RequestID + "#approve"
		msg.DenyURL = n.publicURL + "/requests/" + m.RequestID + "#deny"
	}
	n.n.Notify(ctx, channels, msg)
}

func (n *notifier) close(ctx context.Context) {
	n.n.Flush(ctx)
	n.n.Close()
}
