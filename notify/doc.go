// Package notify delivers Airlock notifications (a request waits for
// approval, break-glass was used, a grant was revoked …) to the channels a
// policy declares: signed webhooks and Slack incoming webhooks.
//
// Delivery is asynchronous: Notify returns at once and a goroutine per
// channel retries with exponential backoff. Every attempt is written to the
// audit log as notify.delivered or notify.failed with the channel, attempt
// number and HTTP status — never the secret, the URL or its query.
//
// # Webhook signature
//
// Each webhook POST carries a JSON body and the headers
//
//	X-Airlock-Timestamp: <unix seconds>
//	X-Airlock-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//	X-Airlock-Delivery:  <delivery id, the same on every retry>
//
// The signed string is the timestamp header's exact value, one '.', then
// the raw body bytes. Receivers verify with VerifySignature (constant time)
// and should reject timestamps more than a few minutes old to stop replays;
// the delivery id lets them drop duplicates caused by retries.
//
// # Where deliveries go
//
// Redirects are never followed: a 3xx answer is a permanent failure, so the
// signed headers reach only the configured URL. NewHTTPClient checks the
// address each connection dials, after DNS (CheckTarget): link-local and
// cloud metadata addresses are refused unless ClientOptions.AllowLinkLocal
// (the server's --webhook-allow-link-local), unspecified, multicast and
// broadcast always; loopback and private addresses are allowed.
//
// The HTTP and signing code is hand-written on net/http and crypto/hmac:
// it is a few dozen lines and no library does exactly this.
package notify
