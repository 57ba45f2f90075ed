package audit

import "testing"

func benchAppendStores(b *testing.B) {}
