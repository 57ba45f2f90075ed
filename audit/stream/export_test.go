package stream

import "github.com/airlockhq/airlock"

// EncodeAirlock exposes encodeAirlock to the tests.
func EncodeAirlock(e *airlock.Event) ([]byte, error) { return encodeAirlock(nil, e) }

// Frame is the octet-counted syslog message of e (facility 13, host h).
func Frame(e *airlock.Event, format string) ([]byte, error) {
	s := newSyslog("", nil, 13, "h", 0, encoderFor(format))
	return s.frame(nil, e)
}

// Encode is e in format, as a file line carries it (without the newline).
func Encode(e *airlock.Event, format string) ([]byte, error) { return encoderFor(format)(nil, e) }
