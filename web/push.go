package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/airlockhq/airlock"
	"github.com/airlockhq/airlock/identity"
)

// pushEvents streams push challenges to a registered device as
// Server-Sent Events ("push" events carrying the three numbers).
func (c *console) pushEvents(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if c.cfg.Push == nil {
		c.jsonError(w, r, airlock.Errorf(airlock.ENOTFOUND, "push is not enabled on this server"))
		return
	}
	if _, err := c.cfg.Push.Device(r.Context(), p, cookie(r, deviceCookie)); err != nil {
		c.jsonError(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	send := func(ch identity.PushChallenge) error {
		b, _ := json.Marshal(ch)
		if _, err := fmt.Fprintf(w, "event: push\ndata: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	// Subscribe sends the pushes already pending first, then new ones
	// (begun on any replica).
	events, cancel := c.cfg.Push.Subscribe(p.User.ID)
	defer cancel()
	fmt.Fprint(w, ": connected\n\n")
	rc.Flush()
	keepAlive := time.NewTicker(20 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ch := <-events:
			if send(ch) != nil {
				return
			}
		case <-keepAlive.C:
			// A session that was ended or timed out stops receiving pushes.
			if _, err := c.principal(r); err != nil {
				return
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// pushAnswer takes the number the user tapped on the device.
func (c *console) pushAnswer(w http.ResponseWriter, r *http.Request, p *identity.Principal) {
	if c.cfg.Push == nil {
		c.jsonError(w, r, airlock.Errorf(airlock.ENOTFOUND, "push is not enabled on this server"))
		return
	}
	var in struct {
		Number int `json:"number"`
	}
	if err := decodeJSON(r, &in); err != nil {
		c.jsonError(w, r, err)
		return
	}
	if err := c.cfg.Push.Answer(r.Context(), p, cookie(r, deviceCookie), r.PathValue("id"), in.Number); err != nil {
		c.jsonError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"state": identity.PushApproved})
}
