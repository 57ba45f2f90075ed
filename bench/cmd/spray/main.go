// Command spray is a benchmark tool: it sends password guesses for one user
// at a fixed rate from a chosen local address, and reports how the server
// answered. bench/spray.sh uses it to check that a spray neither starves
// /healthz nor a legitimate login.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:7080", "Airlock server")
	user := flag.String("user", "alice", "user to spray")
	rate := flag.Int("rate", 100, "guesses per second")
	dur := flag.Duration("for", 20*time.Second, "how long")
	from := flag.String("from", "127.0.0.2", "local source address")
	flag.Parse()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*from)}, Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 256}}
	var sent, locked, unauthorized, other atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	defer tick.Stop()
	end := time.After(*dur)
loop:
	for i := 0; ; i++ {
		select {
		case <-end:
			break loop
		case <-tick.C:
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"user":%q,"password":"guess-%d-password"}`, *user, i)
			resp, err := client.Post(*server+"/api/v1/login", "application/json", bytes.NewBufferString(body))
			sent.Add(1)
			if err != nil {
				other.Add(1)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 429:
				locked.Add(1)
			case 401:
				unauthorized.Add(1)
			default:
				other.Add(1)
			}
		}(i)
	}
	wg.Wait()
	fmt.Fprintf(os.Stdout, "spray: sent=%d rejected=%d locked-out=%d other=%d\n", sent.Load(), unauthorized.Load(), locked.Load(), other.Load())
}
