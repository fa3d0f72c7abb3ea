package vectors_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/chain/vectors"
	"github.com/mandate-auth/mandate/policy"
)

var update = flag.Bool("update", false, "regenerate testdata/vectors from the Go reference code")

const dir = "../../testdata/vectors"

// committed reads the vector files in testdata/vectors.
func committed(t *testing.T) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		}
	}
	return out
}

// TestVectorsAreUpToDate: the committed vectors are what the Go reference
// code generates now (ES256 signatures, which are randomized, are kept from
// the committed files when their signing input is unchanged). Run with
// -update to regenerate after a deliberate change.
func TestVectorsAreUpToDate(t *testing.T) {
	prev := committed(t)
	gen, err := vectors.Generate(prev)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		for name, b := range gen {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for name, b := range gen {
		if !bytes.Equal(prev[name], b) {
			t.Errorf("testdata/vectors/%s is not what the Go code generates: run go test ./chain/vectors -run TestVectorsAreUpToDate -update, and review the diff", name)
		}
	}
	for name := range prev {
		if _, ok := gen[name]; !ok {
			t.Errorf("testdata/vectors/%s is no longer generated: remove it", name)
		}
	}
}

// TestGoReachesEveryVerdict: the Go reference verifier reaches the expected
// verdict of every case of every committed file, and the files hold every
// verdict class at least once.
func TestGoReachesEveryVerdict(t *testing.T) {
	seen := map[string]bool{}
	for name, data := range committed(t) {
		results, err := vectors.Run(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := expectations(t, data)
		if len(want) != len(results) {
			t.Fatalf("%s: %d results for %d cases", name, len(results), len(want))
		}
		for i, r := range results {
			if !reflect.DeepEqual(r.Verdict, want[i]) {
				t.Errorf("%s: %q: Go says %v, the vector expects %v", name, r.Name, r.Verdict, want[i])
			}
			if s, ok := r.Verdict.(string); ok {
				seen[s] = true
			}
		}
	}
	for _, v := range vectors.Verdicts {
		if !seen[v] {
			t.Errorf("no vector expects %q", v)
		}
	}
}

// expectations lists each case's expected verdict, in order.
func expectations(t *testing.T, data []byte) []any {
	var f struct {
		Covers [][]any `json:"covers"`
		Cases  []struct {
			Expect string `json:"expect"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, q := range f.Covers {
		out = append(out, q[2])
	}
	for _, c := range f.Cases {
		out = append(out, c.Expect)
	}
	return out
}

// TestCallVectorsNameTheirPolicies: each call case's policies are the ones
// the Go decision names (what a runner may report besides the verdict).
func TestCallVectorsNameTheirPolicies(t *testing.T) {
	var f vectors.CallFile
	if err := json.Unmarshal(committed(t)["call-orders.json"], &f); err != nil {
		t.Fatal(err)
	}
	var files []policy.File
	for _, p := range f.Policies {
		files = append(files, policy.File{Name: p.Name, Source: []byte(p.Source)})
	}
	set, err := policy.Parse(files...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Cases {
		d := set.AuthorizeCall(policy.CallRequest{Holder: c.Chain.Holder, Groups: c.Groups, Action: policy.Action(c.Action),
			Resource: policy.Entity{Type: c.Resource.Type, ID: c.Resource.ID}, Subject: c.Chain.Subject, SubjectIssuer: c.Chain.SubjectIssuer,
			Actors: c.Chain.Actors, Depth: c.Chain.Depth, Scopes: c.Chain.Scopes, Audiences: c.Chain.Audiences, Root: c.Chain.Root,
			Lineage: c.Chain.Lineage, Bound: c.Chain.Bound})
		got := d.Policies
		if got == nil {
			got = []string{}
		}
		if !reflect.DeepEqual(got, c.Policies) {
			t.Errorf("%q: Go names %v, the vector %v", c.Name, got, c.Policies)
		}
	}
}

// TestMCPVectorsNameTheirPolicies: each MCP case that reached Cedar names
// the policies of Go's decision.
func TestMCPVectorsNameTheirPolicies(t *testing.T) {
	var f vectors.MCPFile
	if err := json.Unmarshal(committed(t)["mcp-orders.json"], &f); err != nil {
		t.Fatal(err)
	}
	got, err := vectors.MCPPolicies(&f)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range f.Cases {
		if !reflect.DeepEqual(got[i], c.Policies) {
			t.Errorf("%q: Go's decision names %v, the vector %v", c.Name, got[i], c.Policies)
		}
	}
}
