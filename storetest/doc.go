// Package storetest is the conformance suite every airlock.Store must
// pass. The sqlite and postgres packages run it from their tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) airlock.Store { return openFresh(t) })
//	}
//
// open must return an empty, migrated store that is closed when t ends.
// Each subtest opens its own store, and the subtests run in parallel.
package storetest
