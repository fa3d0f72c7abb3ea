package chain

import "testing"

func BenchmarkScopeCoverage(b *testing.B) {
	parent := []string{"db:read:*", "db:write:orders", "tools:*", "mail:send"}
	child, _ := ParseScope("db:read:orders tools:search mail:send")
	for b.Loop() {
		if _, bad := Uncovered(parent, child); bad {
			b.Fatal("uncovered")
		}
	}
}
