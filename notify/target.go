package notify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ClientOptions configure the HTTP client NewHTTPClient builds.
type ClientOptions struct {
	// Timeout bounds one delivery attempt (default 10 s).
	Timeout time.Duration
	// AllowLinkLocal lets webhooks reach link-local addresses
	// (169.254.0.0/16, fe80::/10) and the cloud metadata endpoints
	// (169.254.169.254, fd00:ec2::254, 100.100.100.200, 192.0.0.192,
	// 168.63.129.16), also as NAT64 addresses (64:ff9b::/96).
	// They are refused by default: a webhook URL, or a name it resolves
	// to, must not turn the server into a reader of its own instance
	// credentials.
	AllowLinkLocal bool
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// metadataAddrs are cloud instance-metadata endpoints outside the
// link-local ranges (or inside them, named for clarity).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, DigitalOcean …
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud (legacy)
	netip.MustParseAddr("168.63.129.16"),   // Azure WireServer
}

// thisNetwork is 0.0.0.0/8: on Linux a connect to any of it reaches the
// local host, like the unspecified address.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// TargetError is the error for a webhook target address that is refused.
type TargetError struct {
	Addr   netip.Addr
	Reason string
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("webhook target %s refused: %s", e.Addr, e.Reason)
}

// CheckTarget returns a *TargetError when a webhook may not be delivered
// to addr: never to unspecified, multicast or broadcast addresses, and,
// unless allowLinkLocal, never to link-local or cloud-metadata addresses.
// Loopback and private addresses are allowed: receivers are often on-prem.
func CheckTarget(addr netip.Addr, allowLinkLocal bool) error {
	a := addr.Unmap().WithZone("")
	// An IPv4 address embedded in the NAT64 well-known prefix
	// (64:ff9b::/96, RFC 6052) reaches that IPv4 address through a
	// translator: judge the IPv4 address.
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	refuse := func(why string) error { return &TargetError{Addr: a, Reason: why} }
	switch {
	case !a.IsValid():
		return refuse("not an IP address")
	case a.IsUnspecified() || (a.Is4() && thisNetwork.Contains(a)):
		return refuse("unspecified address")
	case a.IsMulticast():
		return refuse("multicast address")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return refuse("broadcast address")
	}
	if allowLinkLocal {
		return nil
	}
	for _, m := range metadataAddrs {
		if a == m {
			return refuse("cloud metadata endpoint (allow with --webhook-allow-link-local)")
		}
	}
	if a.IsLinkLocalUnicast() {
		return refuse("link-local address (allow with --webhook-allow-link-local)")
	}
	return nil
}

// NewHTTPClient returns the client webhooks and Slack messages are sent
// with. It never follows redirects (a receiver's 3xx is the answer, so
// the X-Airlock-* headers go to the configured URL only), and it checks
// the address each connection actually dials — after DNS resolution, so
// a name that resolves, or re-resolves, to a refused address is refused
// too (see CheckTarget). It dials directly: HTTP(S)_PROXY is not used,
// because through a proxy the check would see the proxy, not the target.
func NewHTTPClient(o ClientOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	d := &net.Dialer{
		Timeout:   o.Timeout,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &TargetError{Reason: "unparsable dial address"}
			}
			return CheckTarget(ap.Addr(), o.AllowLinkLocal)
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Timeout: o.Timeout, Transport: tr, CheckRedirect: noRedirects}
}

// noRedirects makes a client return a 3xx response as it is.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// withoutRedirects returns a copy of c that never follows redirects,
// whatever c's own CheckRedirect says.
func withoutRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = noRedirects
	return &cc
}

// isTargetError reports whether err was caused by a refused target.
func isTargetError(err error) bool {
	var te *TargetError
	return errors.As(err, &te)
}
