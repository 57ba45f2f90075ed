package netguard

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.0.2.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted-peer-header-ignored", "198.51.100.1:4000", []string{"203.0.113.9"}, "198.51.100.1:4000"},
		{"trusted-peer-one-hop", "10.1.2.3:4000", []string{"203.0.113.9"}, "203.0.113.9:0"},
		{"rightmost-untrusted-wins", "10.1.2.3:4000", []string{"1.2.3.4, 203.0.113.9, 10.9.9.9"}, "203.0.113.9:0"},
		{"spoofed-left-entries-ignored", "192.0.2.7:1", []string{"6.6.6.6", "203.0.113.9"}, "203.0.113.9:0"},
		{"ipv6-client", "[fd00::1]:443", []string{"2001:db8::5"}, "[2001:db8::5]:0"},
		{"mapped-ipv4-peer", "[::ffff:10.0.0.1]:80", []string{"203.0.113.9"}, "203.0.113.9:0"},
		{"client-with-port", "10.0.0.1:80", []string{"203.0.113.9:5555"}, "203.0.113.9:0"},
		{"malformed-entry-keeps-peer", "10.0.0.1:80", []string{"not-an-ip"}, "10.0.0.1:80"},
		{"all-trusted-keeps-peer", "10.0.0.1:80", []string{"10.2.2.2"}, "10.0.0.1:80"},
		{"no-header-keeps-peer", "10.0.0.1:80", nil, "10.0.0.1:80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClientAddr(tc.peer, tc.xff, trusted); got != tc.want {
				t.Fatalf("ClientAddr(%q, %q) = %q, want %q", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
	if got := ClientAddr("10.0.0.1:80", []string{"203.0.113.9"}, nil); got != "10.0.0.1:80" {
		t.Fatalf("with no trusted proxies the header was believed: %q", got)
	}
}

func TestParsePrefixesRefusesGarbage(t *testing.T) {
	for _, s := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/x"} {
		if _, err := ParsePrefixes(s); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted it", s)
		}
	}
	if p, err := ParsePrefixes(" , "); err != nil || p != nil {
		t.Errorf("empty list = %v, %v", p, err)
	}
}

func TestTrustProxies(t *testing.T) {
	var seen string
	h := TrustProxies([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "203.0.113.9:0" {
		t.Fatalf("handler saw %q", seen)
	}
}

// FuzzClientAddr: whatever a client puts in X-Forwarded-For, the answer is
// the peer or a parseable address, and never a trusted one.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:80", "203.0.113.9, 10.2.2.2")
	f.Add("10.0.0.1:80", "[2001:db8::1]:1,,garbage")
	f.Add("198.51.100.1:9", "1.1.1.1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := ClientAddr(peer, []string{xff}, trusted)
		if got == peer {
			return
		}
		ap, err := netip.ParseAddrPort(got)
		if err != nil {
			t.Fatalf("ClientAddr = %q, not an address", got)
		}
		if isTrusted(ap.Addr(), trusted) {
			t.Fatalf("ClientAddr = %q, a trusted proxy", got)
		}
	})
}
