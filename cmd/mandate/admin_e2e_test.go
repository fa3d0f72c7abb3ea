package main

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
)

// TestOperatorCommandsAgainstARunningServer drives every operator command
// through the admin API of a real server, with the credentials in MANDATE_*
// variables as an operator would set them.
func TestOperatorCommandsAgainstARunningServer(t *testing.T) {
	env := operatorEnv(t)
	root := env.Mint(t, "orchestrator", nil)
	child := env.Delegate(t, "orchestrator", root, "researcher", url.Values{"scope": {"db:read:*"}})
	grand := env.Delegate(t, "researcher", child, "db-agent", url.Values{"scope": {"db:read:orders"}})
	other := env.Mint(t, "orchestrator", nil)
	gj := env.Claims(t, grand).ID

	run := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, "", args...)
		if err != nil {
			t.Fatalf("mandate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := run("lineage", grand); !strings.Contains(out, gj+"  db-agent  [active]  ◀") {
		t.Errorf("lineage of a whole token:\n%s", out)
	}
	if out := run("lineage", gj, "--format", "dot"); !strings.Contains(out, "digraph lineage") {
		t.Errorf("dot:\n%s", out)
	}
	if out := run("inspect", grand); !strings.Contains(out, "verdict  valid") || !strings.Contains(out, "act      db-agent ← researcher") {
		t.Errorf("inspect:\n%s", out)
	}
	parts := strings.Split(grand, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	if out, err := runCLI(t, "", "inspect", tampered); !errors.Is(err, errDenied) || !strings.Contains(out, "REFUSED") {
		t.Errorf("inspect tampered: %v\n%s", err, out)
	}
	if out := run("tokens", "list", "--holder", "orchestrator", "--active"); strings.Count(out, "\n") != 3 {
		t.Errorf("tokens list:\n%s", out)
	}
	if out := run("revoke", "--root", gj, "--reason", "task aborted"); !strings.Contains(out, "3 token(s) made unusable") || !strings.Contains(out, "1 revocation record") {
		t.Errorf("revoke --root:\n%s", out)
	}
	if active(t, env, grand) || !active(t, env, other) {
		t.Error("revoke --root cut the wrong tokens")
	}
	if out := run("revoke", "--holder", "orchestrator", "--reason", "agent compromised"); !strings.Contains(out, "1 token(s) made unusable") {
		t.Errorf("revoke --holder:\n%s", out)
	}
	if _, err := runCLI(t, "", "revoke", gj); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("revoke without a reason: %v", err)
	}
	first := env.Keys.CurrentKeyID()
	if out := run("keys", "rotate"); !strings.Contains(out, "published; it signs from") {
		t.Errorf("keys rotate:\n%s", out)
	}
	if out := run("keys", "list"); !strings.Contains(out, "pending") || !strings.Contains(out, "active") {
		t.Errorf("keys list:\n%s", out)
	}
	if _, err := runCLI(t, "", "keys", "rotate", "--kid", first); err == nil || !strings.Contains(err.Error(), "add --compromised") {
		t.Errorf("--kid without --compromised: %v", err)
	}
	fresh := env.Mint(t, "researcher", nil) // signed by the key about to leak
	if !active(t, env, fresh) {
		t.Fatal("a fresh token is inactive")
	}
	if out := run("keys", "rotate", "--compromised", "--kid", first, "--reason", "found in a paste"); !strings.Contains(out, "key "+first+" withdrawn as compromised") {
		t.Errorf("keys rotate --compromised --kid:\n%s", out)
	}
	if out := run("keys", "list"); !strings.Contains(out, first) || !strings.Contains(out, "compromised") {
		t.Errorf("keys list after the emergency rotation:\n%s", out)
	}
	if active(t, env, fresh) {
		t.Error("a token of the compromised key is still active")
	}
	if out := run("audit", "tail", "-n", "8"); !strings.Contains(out, "EdDSA key published") || !strings.Contains(out, `reason="agent compromised"`) {
		t.Errorf("audit tail:\n%s", out)
	}
	if out := run("audit", "verify"); !strings.Contains(out, "audit trail intact") {
		t.Errorf("audit verify:\n%s", out)
	}
	t.Setenv("MANDATE_CLIENT_ID", "orchestrator")
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("orchestrator"))
	var notAdmin *errNotAdmin
	if _, err := runCLI(t, "", "tokens", "list"); !errors.As(err, &notAdmin) || notAdmin.client != "orchestrator" {
		t.Errorf("a non-admin's credentials: %v", err)
	}
}

func active(t *testing.T, env *dt.Env, tok string) bool {
	t.Helper()
	r := env.Post(t, "introspection_endpoint", "no-grants-rs", url.Values{"token": {tok}})
	return r.JSON["active"] == true
}
