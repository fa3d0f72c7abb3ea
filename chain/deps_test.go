package chain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules checks the layering docs/design.md promises, with `go
// list -deps`: the pure chain rules pull in no I/O stack, no Cedar and no
// JOSE library; the resource-server verifier no storage, no echo and no
// Cedar; per-call authorization no storage and no echo; tokens/jwt nothing
// but the standard library; tokens no project package but its own.
func TestDependencyRules(t *testing.T) {
	const mod = "github.com/mandate-auth/mandate"
	rules := map[string][]string{
		mod + "/chain":          {"net/http", "cedar-policy", "go.etcd.io/bbolt", "labstack/echo", "lestrrat-go/jwx", mod + "/tokens\n", mod + "/policy", mod + "/delegation", mod + "/store"},
		mod + "/chain/verifier": {"cedar-policy", "go.etcd.io/bbolt", "labstack/echo", mod + "/policy", mod + "/delegation", mod + "/store"},
		mod + "/chain/authz":    {"go.etcd.io/bbolt", "labstack/echo", mod + "/delegation", mod + "/store"},
		mod + "/tokens/jwt":     {"net/http", "lestrrat-go/jwx"},
		mod + "/policy":         {"net/http", "go.etcd.io/bbolt", "labstack/echo", mod + "/delegation", mod + "/store", mod + "/tokens\n"},
	}
	for pkg, banned := range rules {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := string(out) + "\n"
		for _, b := range banned {
			if strings.Contains(deps, b) {
				t.Errorf("%s depends on %s", pkg, strings.TrimSpace(b))
			}
		}
	}
	// tokens/jwt uses the standard library only: every dependency is a
	// standard package (no dot in its first element) or itself.
	out, err := exec.Command("go", "list", "-deps", mod+"/tokens/jwt").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if first, _, _ := strings.Cut(dep, "/"); strings.Contains(first, ".") && dep != mod+"/tokens/jwt" {
			t.Errorf("tokens/jwt depends on %s", dep)
		}
	}
	out, err = exec.Command("go", "list", "-deps", mod+"/tokens").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, mod+"/") && dep != mod+"/tokens" && !strings.HasPrefix(dep, mod+"/tokens/") {
			t.Errorf("tokens depends on %s", dep)
		}
	}
}
