package workload_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/workload"
	"github.com/mandate-auth/mandate/tokens"
)

// FuzzFillStaysInTheTemplatesLanguage: whatever claims hold, a name Fill
// makes is one the template's language (Overlap, CanMake, which the start
// checks rely on) says it can make, and never holds a separator a value
// smuggled in.
func FuzzFillStaysInTheTemplatesLanguage(f *testing.F) {
	f.Add("k8s/{a}/{b}", "agents", "researcher")
	f.Add("{a}.{b}", "x", "..")
	f.Add("{a}", "a/b", "c")
	f.Fuzz(func(t *testing.T, tmpl, a, b string) {
		if len(tmpl) > 64 {
			return
		}
		name, err := workload.Fill(tmpl, map[string]any{"a": a, "b": b})
		if err != nil {
			return
		}
		if !workload.CanMake(tmpl, name) {
			t.Fatalf("Fill(%q) = %q, which CanMake denies", tmpl, name)
		}
		literal := strings.NewReplacer("{a}", "", "{b}", "").Replace(tmpl)
		if strings.Count(name, "/") != strings.Count(literal, "/") || strings.Count(name, ":") != strings.Count(literal, ":") {
			t.Fatalf("Fill(%q) with %q, %q = %q: a value brought a separator", tmpl, a, b, name)
		}
	})
}

// FuzzIssuerVerify: the assertion parser never panics, and accepts only a
// token its key signed.
func FuzzIssuerVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwk, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "k", "alg": "EdDSA",
		"x": base64.RawURLEncoding.EncodeToString(pub)}}})
	keys, err := tokens.NewSetResolver(jwk)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1795770000, 0)
	is := &workload.Issuer{Issuer: "https://k8s.example", Audience: "https://mandate.example", Keys: keys,
		Rules: []workload.Rule{{Match: map[string]string{"sub": "system:serviceaccount:*:*"}, Agent: "k8s/{kubernetes.io.namespace}/{sub#2}"}}}
	sign := func(payload string) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k"}`))
		in := h + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(in)))
	}
	good := `{"iss":"https://k8s.example","aud":"https://mandate.example","sub":"system:serviceaccount:agents:r","exp":1795771000,"kubernetes.io":{"namespace":"agents"}}`
	f.Add(good, true)
	f.Add(`{"iss":"https://k8s.example","aud":["https://mandate.example"],"sub":"system:serviceaccount:a:b","sub":"x","exp":1795771000}`, true)
	f.Add(`{"iss":"https://k8s.example","aud":"https://mandate.example","sub":"system:serviceaccount:agents:r","exp":1e400}`, true)
	f.Add("eyJhbGciOiJub25lIn0.e30.", false)
	f.Fuzz(func(t *testing.T, in string, signIt bool) {
		if len(in) > 8192 {
			return
		}
		tok := in
		if signIt {
			tok = sign(in)
		}
		a, err := is.Verify(tok, now)
		if err != nil {
			return
		}
		if !signIt {
			t.Fatalf("an unsigned input was accepted: %q", in)
		}
		if !strings.HasPrefix(a.Identity.Agent, "k8s/") || strings.Count(a.Identity.Agent, "/") != 2 {
			t.Fatalf("name %q from %q", a.Identity.Agent, in)
		}
	})
}
