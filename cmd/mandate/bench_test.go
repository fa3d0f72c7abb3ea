package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestBenchRunsEveryOperation runs the load generator briefly against an
// embedded server for each operation, closed and open loop, and checks it
// reports what it promises (no error, percentiles, RSS, the crypto bound).
func TestBenchRunsEveryOperation(t *testing.T) {
	for _, o := range []benchOptions{
		{op: "mint", concurrency: 4},
		{op: "exchange", depth: 2, concurrency: 4},
		{op: "introspect", concurrency: 4},
		{op: "revoke", rate: 200},
	} {
		o.depth = max(o.depth, 1)
		o.concurrency = max(o.concurrency, 1)
		o.duration, o.alg, o.bcryptCost = 300*time.Millisecond, "EdDSA", bcrypt.MinCost
		var out bytes.Buffer
		if err := runBench(context.Background(), &out, o); err != nil {
			t.Fatalf("%s: %v", o.op, err)
		}
		for _, want := range []string{
			`throughput   [1-9]\d* ok/s`, `latency      p50 \S+  p90 \S+  p99 \S+  max \S+`, `errors       none`,
			`server RSS   \d+\.\d MB`, `crypto bound EdDSA sign \+ verify \S+ per token`,
		} {
			if !regexp.MustCompile(want).MatchString(out.String()) {
				t.Errorf("%s: output lacks %q:\n%s", o.op, want, out.String())
			}
		}
	}
	if err := runBench(context.Background(), &bytes.Buffer{}, benchOptions{op: "dance", depth: 1, concurrency: 1, duration: time.Second}); err == nil {
		t.Error("an unknown operation ran")
	}
}
