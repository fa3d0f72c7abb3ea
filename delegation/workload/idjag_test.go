package workload_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/delegation/workload"
)

func idjagPayload(edit func(map[string]string)) string {
	m := map[string]string{
		"iss": `"https://idp.acme.example"`, "sub": `"alice@acme.example"`, "aud": `"https://mandate.example"`,
		"client_id": `"orchestrator"`, "jti": `"9f1c0d2e"`, "iat": "1795770000", "exp": "1795770300",
		"scope": `"db:read:* tools:search"`, "resource": `"https://orders.example"`,
	}
	if edit != nil {
		edit(m)
	}
	var parts []string
	for _, k := range []string{"iss", "sub", "aud", "client_id", "jti", "iat", "exp", "scope", "resource"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%q:%s", k, v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestIDJAG(t *testing.T) {
	idp := newPlatform(t, "idp-1", true)
	is := &workload.IDJAGIssuer{Issuer: "https://idp.acme.example", Audience: "https://mandate.example", Keys: keysOf(t, idp)}
	hdr := `{"alg":"RS256","kid":"idp-1","typ":"oauth-id-jag+jwt"}`
	g, err := is.Verify(idp.sign(t, hdr, idjagPayload(nil)), "orchestrator", now)
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject != "alice@acme.example" || g.JTI != "9f1c0d2e" || strings.Join(g.Scopes, " ") != "db:read:* tools:search" || g.Resources[0] != "https://orders.example" {
		t.Errorf("%+v", g)
	}
	if strings.Contains(g.String(), "eyJ") {
		t.Error("String shows the token")
	}
	for _, tt := range []struct {
		name, hdr, payload, client, want string
	}{
		{"a plain JWT's typ", `{"alg":"RS256","kid":"idp-1","typ":"JWT"}`, idjagPayload(nil), "orchestrator", "typ"},
		{"no typ", `{"alg":"RS256","kid":"idp-1"}`, idjagPayload(nil), "orchestrator", "typ"},
		{"made for another client", hdr, idjagPayload(nil), "researcher", `made for client "orchestrator"`},
		{"no client_id", hdr, idjagPayload(func(m map[string]string) { delete(m, "client_id") }), "orchestrator", "client_id"},
		{"no jti", hdr, idjagPayload(func(m map[string]string) { delete(m, "jti") }), "orchestrator", "jti"},
		{"no iat", hdr, idjagPayload(func(m map[string]string) { delete(m, "iat") }), "orchestrator", "iat"},
		{"for another authorization server", hdr, idjagPayload(func(m map[string]string) { m["aud"] = `"https://other-as.example"` }), "orchestrator", "audience"},
		{"from another IdP", hdr, idjagPayload(func(m map[string]string) { m["iss"] = `"https://evil-idp.example"` }), "orchestrator", "issuer"},
		{"too long-lived", hdr, idjagPayload(func(m map[string]string) { m["exp"] = "1795773600" }), "orchestrator", "longer"},
		{"expired", hdr, idjagPayload(func(m map[string]string) { m["iat"], m["exp"] = "1795769000", "1795769100" }), "orchestrator", "expired"},
		{"a bad scope", hdr, idjagPayload(func(m map[string]string) { m["scope"] = `"db:read:*\tx"` }), "orchestrator", "scope"},
		{"a resource that is a number", hdr, idjagPayload(func(m map[string]string) { m["resource"] = "5" }), "orchestrator", "resource"},
	} {
		if _, err := is.Verify(idp.sign(t, tt.hdr, tt.payload), tt.client, now); !errors.Is(err, workload.ErrAssertion) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrAssertion naming %q", tt.name, err, tt.want)
		}
	}
}
