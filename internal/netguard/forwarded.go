package netguard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParsePrefixes parses a comma-separated list of CIDR prefixes or single
// addresses ("10.0.0.0/8, 192.0.2.7, fd00::/8"), as --trusted-proxies
// takes them. An empty list is nil.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ClientAddr returns the address of the client behind trusted proxies:
// when peer (a "host:port" as in http.Request.RemoteAddr) is in trusted,
// it walks the X-Forwarded-For entries from the right, skipping trusted
// hops, and returns the first untrusted one as "ip:0". Otherwise — the peer
// is not a trusted proxy, no entry is untrusted and valid, or an entry does
// not parse — it returns peer: a header from anyone else, or a malformed
// one, is never believed.
func ClientAddr(peer string, forwardedFor []string, trusted []netip.Prefix) string {
	if len(trusted) == 0 || !isTrusted(hostAddr(peer), trusted) {
		return peer
	}
	var hops []string
	for _, v := range forwardedFor {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a := hostAddr(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			return peer
		}
		if !isTrusted(a, trusted) {
			return netip.AddrPortFrom(a, 0).String()
		}
	}
	return peer
}

// TrustProxies wraps next so that requests arriving from a trusted proxy
// carry the client's address (ClientAddr) in RemoteAddr, which is what the
// API and the console use as the source of an attempt (login throttling,
// audit events). With no trusted proxies it returns next unchanged.
func TrustProxies(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted); a != r.RemoteAddr {
			r2 := *r
			r2.RemoteAddr = a
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// hostAddr parses "ip", "ip:port" or "[ip6]:port" (zones dropped, IPv4 in
// IPv6 unmapped); the zero Addr when it is none of these.
func hostAddr(s string) netip.Addr {
	if len(s) > 64 {
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
