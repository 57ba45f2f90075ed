package notify

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/policy"
)

// redirectPair starts a receiver that answers 302 to a second server and
// returns the first's URL and the second's request counter.
func redirectPair(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var second atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
	}))
	t.Cleanup(other.Close)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/stolen", http.StatusFound)
	}))
	t.Cleanup(first.Close)
	return first.URL + "/hook", &second
}

func TestRedirectIsNeverFollowed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{
		{"default-client", nil},
		{"caller-client-that-follows", &http.Client{Timeout: 5 * time.Second}},
		{"NewHTTPClient", NewHTTPClient(ClientOptions{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, second := redirectPair(t)
			rec := &recorder{}
			n := New([]policy.Channel{{Name: "sec", Type: "webhook", URL: u, SecretEnv: "HOOK_SECRET"}}, secrets, rec, tc.client, nil, nil)
			n.Backoff = func(int) time.Duration { return 0 }
			t.Cleanup(func() { n.Close() })
			n.Notify(t.Context(), []string{"sec"}, msg)
			flush(t, n)
			if c := second.Load(); c != 0 {
				t.Fatalf("redirect target received %d request(s)", c)
			}
			evs := rec.all()
			if len(evs) != 1 || evs[0].Action != ActionFailed || details(t, evs[0])["status"] != float64(http.StatusFound) || details(t, evs[0])["final"] != true {
				t.Fatalf("want one final notify.failed with status 302, got %+v", evs)
			}
			if !strings.Contains(details(t, evs[0])["error"].(string), "redirects are not followed") {
				t.Errorf("error does not say why: %s", evs[0].Details)
			}
		})
	}
}

func TestLinkLocalTargetRefusedAtDial(t *testing.T) {
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:8080/hook", "http://[::ffff:169.254.169.254]/", "http://0.0.0.0:1/"} {
		t.Run(u, func(t *testing.T) {
			rec := &recorder{}
			n := New([]policy.Channel{{Name: "sec", Type: "webhook", URL: u, SecretEnv: "HOOK_SECRET"}}, secrets, rec, nil, nil, nil)
			n.Backoff = func(int) time.Duration { return 0 }
			t.Cleanup(func() { n.Close() })
			n.Notify(t.Context(), []string{"sec"}, msg)
			flush(t, n)
			evs := rec.all()
			if len(evs) != 1 || evs[0].Outcome != airlock.OutcomeFailure || details(t, evs[0])["final"] != true {
				t.Fatalf("want one final failure (not retried), got %+v", evs)
			}
			if e := details(t, evs[0])["error"].(string); !strings.Contains(e, "refused") {
				t.Fatalf("error %q does not name the refusal", e)
			}
		})
	}
}

func TestLoopbackTargetAllowed(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	// By name: the check runs on the address dialled after resolution.
	u := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	rec := &recorder{}
	n := New([]policy.Channel{{Name: "sec", Type: "webhook", URL: u, SecretEnv: "HOOK_SECRET"}}, secrets, rec, nil, nil, nil)
	t.Cleanup(func() { n.Close() })
	n.Notify(t.Context(), []string{"sec"}, msg)
	flush(t, n)
	if got.Load() != 1 {
		t.Fatalf("loopback receiver got %d requests; audit %+v", got.Load(), rec.all())
	}
}

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		addr             string
		refused, allowed bool // refused by default; refused with AllowLinkLocal
	}{
		{"127.0.0.1", false, false},
		{"::1", false, false},
		{"10.1.2.3", false, false},
		{"192.168.1.10", false, false},
		{"fd12:3456::1", false, false},
		{"93.184.216.34", false, false},
		{"169.254.169.254", true, false},
		{"169.254.170.2", true, false},
		{"169.254.1.1", true, false},
		{"fe80::1", true, false},
		{"fe80::1%eth0", true, false},
		{"fd00:ec2::254", true, false},
		{"100.100.100.200", true, false},
		{"192.0.0.192", true, false},
		{"::ffff:169.254.169.254", true, false},
		{"168.63.129.16", true, false},
		{"64:ff9b::a9fe:a9fe", true, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::a00:1", false, false},    // NAT64 of 10.0.0.1
		{"64:ff9b::e000:1", true, true},     // NAT64 of 224.0.0.1
		{"0.0.0.0", true, true},
		{"0.1.2.3", true, true},
		{"::", true, true},
		{"224.0.0.1", true, true},
		{"ff02::1", true, true},
		{"255.255.255.255", true, true},
	} {
		a := netip.MustParseAddr(tc.addr)
		if err := CheckTarget(a, false); (err != nil) != tc.refused {
			t.Errorf("CheckTarget(%s, false) = %v, want refused=%v", tc.addr, err, tc.refused)
		}
		if err := CheckTarget(a, true); (err != nil) != tc.allowed {
			t.Errorf("CheckTarget(%s, true) = %v, want refused=%v", tc.addr, err, tc.allowed)
		}
	}
}
