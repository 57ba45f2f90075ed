// Package recording writes, stores, replays and verifies terminal session
// recordings in the asciicast v2 format (https://docs.asciinema.org/manual/asciicast/v2/):
// one JSON header line, then one JSON array per event:
// [seconds, "o", "output"], [seconds, "i", "input"] or [seconds, "r", "COLSxROWS"].
//
// A Writer buffers events and flushes them at least once a second, and
// computes the SHA-256 of exactly the bytes written so that the gateway can
// put it into the session.ended audit event; Verify later proves a stored
// recording unchanged. Store abstracts where recordings live; Dir keeps them
// as files in one directory.
//
// The format is simple enough that it is written by hand here rather than
// with a library.
package recording
