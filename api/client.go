package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/airlockhq/airlock"
)

// Client calls the Airlock API. The zero value is not usable; set BaseURL.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for baseURL with token (may be empty).
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Do sends in (JSON, if non-nil) to method path and decodes the response
// into out (if non-nil). API errors come back as *airlock.Error with the
// server's code, message and details.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.Raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s response: %w", method, path, err)
	}
	return nil
}

// Raw sends a request and returns the response for a 2xx status; any
// other status is turned into an error.
func (c *Client) Raw(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, airlock.WrapError(airlock.EUNAVAILABLE,
			fmt.Sprintf("cannot reach the Airlock server at %s; is `airlock server` running? (set --server or AIRLOCK_SERVER)", c.BaseURL), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb errorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" {
		return nil, &airlock.Error{Code: codeOfStatus(resp.StatusCode), Message: fmt.Sprintf("server answered %s", resp.Status)}
	}
	return nil, &airlock.Error{Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
}
