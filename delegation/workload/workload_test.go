package workload_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/delegation/workload"
)

func claims(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A Kubernetes projected service-account token's payload, as the API server
// writes it (audience and expiry as configured on the projected volume).
const k8sToken = `{
  "aud": ["https://mandate.example"], "exp": 1795773600, "iat": 1795770000, "nbf": 1795770000,
  "iss": "https://kubernetes.default.svc.cluster.local",
  "jti": "6c4f9a1e-0b7d-4c1e-9d3a-5e2b8f1a7c90",
  "kubernetes.io": {
    "namespace": "agents",
    "node": {"name": "node-1", "uid": "7e1b..."},
    "pod": {"name": "researcher-5d9c7b-x2x4z", "uid": "a1b2..."},
    "serviceaccount": {"name": "researcher", "uid": "c3d4..."}
  },
  "sub": "system:serviceaccount:agents:researcher"
}`

// A SPIFFE JWT-SVID: the SPIFFE ID in sub, no other identity claims.
const svid = `{"sub": "spiffe://example.org/agents/summarizer", "aud": ["https://mandate.example"], "exp": 1795773600, "iat": 1795770000}`

// A GitHub Actions OIDC token's payload.
const githubToken = `{
  "iss": "https://token.actions.githubusercontent.com", "aud": "https://mandate.example",
  "sub": "repo:acme/agents:ref:refs/heads/main", "repository": "acme/agents", "repository_owner": "acme",
  "ref": "refs/heads/main", "workflow": "nightly-eval", "job_workflow_ref": "acme/agents/.github/workflows/eval.yml@refs/heads/main",
  "event_name": "schedule", "run_id": "9876543210", "exp": 1795773600, "iat": 1795770000
}`

func TestKubernetesServiceAccounts(t *testing.T) {
	rules := []workload.Rule{
		{Match: map[string]string{"sub": "system:serviceaccount:ops:orchestrator"}, Client: "orchestrator"},
		{Match: map[string]string{"sub": "system:serviceaccount:agents:*"},
			Agent: "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}", Scopes: []string{"db:read:*"}, Groups: []string{"research-agents"}},
	}
	id, err := workload.Map(rules, claims(t, k8sToken))
	if err != nil {
		t.Fatal(err)
	}
	if id.Agent != "k8s/agents/researcher" || id.Client != "" || id.Rule != 1 || id.Name() != "k8s/agents/researcher" || id.Groups[0] != "research-agents" {
		t.Errorf("identity %+v", id)
	}
	orch := claims(t, strings.Replace(k8sToken, "system:serviceaccount:agents:researcher", "system:serviceaccount:ops:orchestrator", 1))
	if id, err := workload.Map(rules, orch); err != nil || id.Client != "orchestrator" || id.Rule != 0 {
		t.Errorf("orchestrator: %+v %v", id, err)
	}
	// Another namespace matches no rule: * does not cross ':'.
	other := claims(t, strings.Replace(k8sToken, "system:serviceaccount:agents:researcher", "system:serviceaccount:agents:x:evil", 1))
	if _, err := workload.Map(rules, other); !errors.Is(err, workload.ErrNoRule) {
		t.Errorf("a sub with an extra segment: %v", err)
	}
}

func TestSPIFFEAndGitHub(t *testing.T) {
	spiffe := []workload.Rule{{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Agent: "spiffe/{sub}"}}
	// A SPIFFE ID is not a name value: it holds ':' and '/'.
	if _, err := workload.Map(spiffe, claims(t, svid)); !errors.Is(err, workload.ErrBadValue) {
		t.Errorf("a SPIFFE ID substituted whole: %v", err)
	}
	spiffe[0] = workload.Rule{Match: map[string]string{"sub": "spiffe://example.org/agents/summarizer"}, Client: "summarizer"}
	if id, err := workload.Map(spiffe, claims(t, svid)); err != nil || id.Client != "summarizer" {
		t.Errorf("SPIFFE: %+v %v", id, err)
	}
	gh := []workload.Rule{{Match: map[string]string{"repository": "acme/agents", "ref": "refs/heads/main", "workflow": "nightly-*"},
		Agent: "gh/{repository_owner}/{workflow}"}}
	if id, err := workload.Map(gh, claims(t, githubToken)); err != nil || id.Agent != "gh/acme/nightly-eval" {
		t.Errorf("GitHub: %+v %v", id, err)
	}
	// A branch other than main matches nothing.
	if _, err := workload.Map(gh, claims(t, strings.Replace(githubToken, `"ref": "refs/heads/main"`, `"ref": "refs/heads/attacker"`, 1))); !errors.Is(err, workload.ErrNoRule) {
		t.Errorf("another branch: %v", err)
	}
}

// TestClaimsCannotSmuggleANamespace: every substituted value is a plain name.
func TestClaimsCannotSmuggleANamespace(t *testing.T) {
	for _, v := range []string{"", "..", ".", "a/b", "a:b", "x y", strings.Repeat("a", 64), "ünicode", "a\x00"} {
		c := map[string]any{"ns": v}
		if _, err := workload.Fill("k8s/{ns}", c); !errors.Is(err, workload.ErrBadValue) {
			t.Errorf("value %q: %v", v, err)
		}
	}
	for _, c := range []map[string]any{{}, {"ns": 5}, {"ns": map[string]any{"a": "b"}}, {"ns": nil}} {
		if _, err := workload.Fill("k8s/{ns}", c); !errors.Is(err, workload.ErrBadValue) {
			t.Errorf("claims %v: %v", c, err)
		}
	}
	if n, err := workload.Fill("k8s/{ns}", map[string]any{"ns": "a.b_c-" + strings.Repeat("d", 57)}); err != nil || len(n) != 4+63 {
		t.Errorf("a 63-byte value: %q %v", n, err)
	}
}

func TestClaimPathsTakeTheLongestKey(t *testing.T) {
	c := map[string]any{"a": map[string]any{"b": "short"}, "a.b": "long", "x.y": map[string]any{"z": "deep"}}
	for path, want := range map[string]any{"a.b": "long", "x.y.z": "deep"} {
		if v, ok := workload.Claim(c, path); !ok || v != want {
			t.Errorf("%s = %v %v", path, v, ok)
		}
	}
	for _, path := range []string{"a.c", "x", "x.y.z.w", "q"} {
		if v, ok := workload.Claim(c, path); ok && path != "x" {
			t.Errorf("%s found %v", path, v)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		ok   bool
	}{
		{"system:serviceaccount:agents:*", "system:serviceaccount:agents:researcher", true},
		{"system:serviceaccount:agents:*", "system:serviceaccount:agents:", true},
		{"system:serviceaccount:agents:*", "system:serviceaccount:agents:a:b", false},
		{"spiffe://example.org/agents/*", "spiffe://example.org/agents/x", true},
		{"spiffe://example.org/agents/*", "spiffe://example.org/agents/x/y", false},
		{"spiffe://example.org/*/x", "spiffe://example.org/agents/x", true},
		{"*", "", true}, {"*", "a/b", false}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false},
		{"refs/heads/*", "refs/heads/main", true}, {"refs/heads/*", "refs/tags/main", false}, {"exact", "exact", true}, {"exact", "exact2", false},
	} {
		if got := workload.Glob(tt.p, tt.s); got != tt.ok {
			t.Errorf("Glob(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
	// Many stars against a long segment: linear work, not exponential.
	if workload.Glob(strings.Repeat("*a", 30)+"b", strings.Repeat("a", 5000)) {
		t.Error("matched without a b")
	}
}

func TestRulesAreCheckedAtStart(t *testing.T) {
	for _, r := range []workload.Rule{
		{}, {Client: "a", Agent: "b/{c}"}, {Agent: "fixed-name"}, {Agent: "k8s/{ns"}, {Agent: "k8s/ns}"}, {Agent: "k8s/{}"},
		{Client: "a", Match: map[string]string{"": "x"}}, {Client: "a", Match: map[string]string{"sub": ""}},
	} {
		if r.Check() == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	if err := (workload.Rule{Agent: "k8s/{a}/{b.c}", Match: map[string]string{"sub": "x:*"}}).Check(); err != nil {
		t.Error(err)
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("system:*:a*", "system:x:ab")
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 64 || len(s) > 256 {
			return
		}
		got := workload.Glob(p, s)
		if want := reference(p, s); got != want {
			t.Fatalf("Glob(%q, %q) = %v, the reference says %v", p, s, got, want)
		}
	})
}

// reference is the glob by its definition, memoized: match[i][j] says
// whether p[i:] matches s[j:].
func reference(p, s string) bool {
	memo := map[[2]int]bool{}
	var m func(i, j int) bool
	m = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var v bool
		switch {
		case i == len(p):
			v = j == len(s)
		case p[i] == '*':
			v = m(i+1, j) || (j < len(s) && s[j] != ':' && s[j] != '/' && m(i, j+1))
		default:
			v = j < len(s) && s[j] == p[i] && m(i+1, j+1)
		}
		memo[k] = v
		return v
	}
	return m(0, 0)
}

func TestSPIFFEPathSegmentBecomesTheName(t *testing.T) {
	rules := []workload.Rule{{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Agent: "spiffe/{sub#1}"}}
	if err := rules[0].Check(); err != nil {
		t.Fatal(err)
	}
	id, err := workload.Map(rules, claims(t, svid))
	if err != nil || id.Agent != "spiffe/summarizer" {
		t.Fatalf("%+v %v", id, err)
	}
	for _, bad := range []workload.Rule{
		{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Agent: "spiffe/{sub#2}"},   // one lone *
		{Match: map[string]string{"sub": "spiffe://example.org/agents/a*"}, Agent: "spiffe/{sub#1}"},  // not alone
		{Match: map[string]string{"iss": "*"}, Agent: "spiffe/{sub#1}"},                               // sub has no glob
		{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Agent: "spiffe/{sub#01}"},  // not a plain number
		{Match: map[string]string{"sub": "spiffe://example.org/agents/*"}, Agent: "spiffe/{sub#one}"}, // not a number
	} {
		if err := bad.Check(); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	// A captured segment still obeys the value rule.
	dots := claims(t, strings.Replace(svid, "summarizer", "..", 1))
	if _, err := workload.Map(rules, dots); !errors.Is(err, workload.ErrBadValue) {
		t.Errorf("a dots-only segment: %v", err)
	}
}

func TestTemplatesOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"k8s/{ns}/{sa}", "k8s/agents/{sa}", true},
		{"k8s/{ns}/{sa}", "k8s-agents/{sa}", false},
		{"k8s/{ns}/{sa}", "k8s/{x}", false}, // a hole never makes '/'
		{"{a}", "orchestrator", true},
		{"{a}-bot", "orchestrator", false},
		{"gh/{repo}", "gh/acme/x", false},
		{"a{x}b", "a{y}", true},
		{"x.{a}", "{b}.y", true},
	} {
		if got := workload.Overlap(c.a, c.b); got != c.want {
			t.Errorf("Overlap(%q, %q) = %v", c.a, c.b, got)
		}
		if got := workload.Overlap(c.b, c.a); got != c.want {
			t.Errorf("Overlap(%q, %q) = %v", c.b, c.a, got)
		}
	}
	if !workload.CanMake("k8s/{ns}/{sa}", "k8s/agents/researcher") || workload.CanMake("k8s/{ns}/{sa}", "k8s/agents") || workload.CanMake("{a}", "{a}") {
		t.Error("CanMake")
	}
	if !workload.CanMakeUnder("{ns}/{sa}", "orchestrator") || workload.CanMakeUnder("k8s/{ns}/{sa}", "orchestrator") || !workload.CanMakeUnder("k8s/{ns}", "k8s") {
		t.Error("CanMakeUnder")
	}
}
