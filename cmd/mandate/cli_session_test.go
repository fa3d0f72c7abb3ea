package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/tokens"
)

// TestCLISession drives the data commands against a real server, as an
// operator would, and compares every output with golden files: the text
// forms in one session transcript, each JSON form in its own file (the
// shapes docs/operators.md promises).
func TestCLISession(t *testing.T) {
	env := operatorEnv(t)
	norm := &normalizer{}
	step := func() { env.Clock.Advance(time.Second) } // jtis sort by time: a fixed order
	root := env.Mint(t, "orchestrator", nil)
	step()
	child := env.Delegate(t, "orchestrator", root, "researcher", url.Values{"scope": {"db:read:*"}})
	step()
	grand := env.Delegate(t, "researcher", child, "db-agent", url.Values{"scope": {"db:read:orders"}})
	step()
	other := env.Mint(t, "orchestrator", url.Values{"scope": {"tools:*"}})
	step()
	jti := map[string]string{}
	for name, tok := range map[string]string{"root": root, "child": child, "grand": grand, "other": other} {
		jti[name] = env.Claims(t, tok).ID
		norm.add(tok, "TOKEN-"+name).add(jti[name], "JTI-"+name)
	}
	// The actors' identity tokens (Delegate mints them), in issuance order.
	all, _, _ := runMain(t, "", "tokens", "list", "--all", "--format", "json")
	var page struct {
		Tokens []struct{ JTI, Holder string }
	}
	if err := json.Unmarshal([]byte(all), &page); err != nil {
		t.Fatal(err)
	}
	for _, n := range page.Tokens {
		if !slices.Contains(slices.Collect(maps.Values(jti)), n.JTI) {
			norm.add(n.JTI, "JTI-identity-"+n.Holder)
		}
	}

	var tr transcript
	// text runs a command whose output goes into the transcript.
	text := func(code int, args ...string) {
		t.Helper()
		if _, got := tr.run(t, "", args...); got != code {
			t.Errorf("mandate %s: exit %d, want %d", strings.Join(args, " "), got, code)
		}
	}
	// jsonOut runs a command with --format json; its output is checked to be
	// JSON (one value, or one per line for the streaming commands) and kept
	// for its golden file, compared once the keys are known.
	outputs := map[string]string{}
	jsonOut := func(golden string, code int, args ...string) {
		t.Helper()
		out, stderr, got := runMain(t, "", append(args, "--format", "json")...)
		if got != code {
			t.Errorf("mandate %s --format json: exit %d, want %d: %s", strings.Join(args, " "), got, code, stderr)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		for dec.More() {
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Errorf("%s: not JSON: %v\n%s", golden, err, out)
				break
			}
		}
		outputs[golden] = out
	}

	text(0, "lineage", jti["child"])
	text(0, "lineage", grand, "--format", "dot")
	jsonOut("lineage.json", 0, "lineage", jti["child"])
	text(0, "tokens", "list", "--holder", "orchestrator")
	jsonOut("tokens-list.json", 0, "tokens", "list", "--holder", "orchestrator", "--limit", "1")
	text(0, "revoke", jti["child"], "--reason", "task step done")
	jsonOut("revoke.json", 0, "revoke", "--root", jti["other"], "--reason", "task aborted")
	text(0, "tokens", "list", "--active")
	text(0, "keys", "rotate")
	step()
	jsonOut("keys-rotate.json", 0, "keys", "rotate", "--compromised", "--reason", "key file in a backup")
	text(0, "keys", "list")
	jsonOut("keys-list.json", 0, "keys", "list")
	text(0, "audit", "tail", "-n", "4")
	jsonOut("audit-tail.json", 0, "audit", "tail", "-n", "2")
	text(0, "audit", "verify")
	jsonOut("audit-verify.json", 0, "audit", "verify")

	keys, err := env.DB.SigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(keys, func(a, b tokens.StoredKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for i, k := range keys {
		norm.add(k.ID, fmt.Sprintf("KID-%d", i+1))
	}
	goldenCLI(t, "session.txt", tr.String(), norm)
	for name, out := range outputs {
		goldenCLI(t, name, out, norm)
	}
}
