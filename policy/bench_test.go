package policy_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/policy"
)

// BenchmarkDecide is one exchange decision against the demo policy set: an
// orchestrator delegating two read scopes to a research agent (context built,
// entities built, all eight policies evaluated).
func BenchmarkDecide(b *testing.B) {
	s := demoSet(b)
	req := policy.Request{Principal: "orchestrator", PrincipalGroups: orch, Action: policy.ActionDelegate,
		Resource: "researcher", ResourceGroups: res, Subject: "orchestrator", Scopes: []string{"db:read:*", "db:read:orders"},
		Audiences: []string{"https://orders.example"}, Depth: 1, Actors: []string{"orchestrator"}, Root: "task-42", TTL: 5 * time.Minute}
	ctx := context.Background()
	for b.Loop() {
		if d, _ := s.Decide(ctx, req); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkAuthorizeCall is one per-call decision of the orders API's policy.
func BenchmarkAuthorizeCall(b *testing.B) {
	s, err := policy.LoadDir(filepath.Join(demoPolicies, "api"))
	if err != nil {
		b.Fatal(err)
	}
	req := policy.CallRequest{Holder: "db-agent", Action: policy.ActionCall, Resource: policy.Entity{Type: "Table", ID: "orders"},
		Subject: "orchestrator", Actors: []string{"db-agent", "researcher"}, Depth: 2, Scopes: []string{"db:read:orders"},
		Audiences: []string{"https://orders.example"}, Root: "task-42"}
	for b.Loop() {
		if d := s.AuthorizeCall(req); !d.Allow {
			b.Fatal(d.Reason)
		}
	}
}
