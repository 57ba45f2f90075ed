package secrets

import (
	"fmt"
	"log/slog"
)

// redacted is what a Secret shows instead of its value.
const redacted = "[redacted]"

// Secret is a string that redacts itself: String, GoString, Format (every
// verb), MarshalJSON, MarshalText and LogValue all give "[redacted]".
// Reveal returns the value. Converting with string(s) also reveals it, so
// do that only where the value is really needed. Do not use Secret as a
// map key in JSON: encoding/json writes string-kind keys verbatim.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "[redacted]" (for %#v).
func (s Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb and flag.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON returns the JSON string "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]" (YAML, TOML and map keys use it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer: loggers see "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }
