package vectors

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mandate-auth/mandate/tokens"
)

// The fixed settings of the generated verification files.
const (
	vecNow      = 1795770000
	vecIssuer   = "https://mandate.example"
	vecAudience = "https://api.example"
	vecPublic   = "https://api.example"
	vecURL      = "https://api.example/orders"
	vecLeeway   = 5
)

var b64 = base64.RawURLEncoding

// key is a fixed signing key of the vectors: the same bytes every run.
type key struct {
	alg string
	kid string
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	jwk map[string]string // the public JWK
}

// seed derives 32 fixed bytes from a label.
func seed(label string) []byte {
	s := sha256.Sum256([]byte("mandate test vectors: " + label))
	return s[:]
}

func edKey(label string) *key {
	priv := ed25519.NewKeyFromSeed(seed(label))
	pub := priv.Public().(ed25519.PublicKey)
	k := &key{alg: tokens.AlgEdDSA, ed: priv, jwk: map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(pub)}}
	k.kid = thumbprint(`{"crv":"Ed25519","kty":"OKP","x":"` + k.jwk["x"] + `"}`)
	return k
}

func ecKey(label string) *key {
	n := elliptic.P256().Params().N
	d := new(big.Int).SetBytes(seed(label))
	d.Mod(d, new(big.Int).Sub(n, big.NewInt(1))).Add(d, big.NewInt(1))
	raw := make([]byte, 32)
	d.FillBytes(raw)
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		panic(err) // a fixed, valid scalar: cannot fail
	}
	x, y := make([]byte, 32), make([]byte, 32)
	priv.X.FillBytes(x)
	priv.Y.FillBytes(y)
	k := &key{alg: tokens.AlgES256, ec: priv, jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(x), "y": b64.EncodeToString(y)}}
	k.kid = thumbprint(`{"crv":"P-256","kty":"EC","x":"` + k.jwk["x"] + `","y":"` + k.jwk["y"] + `"}`)
	return k
}

// thumbprint is the RFC 7638 thumbprint of a JWK's canonical members.
func thumbprint(canonical string) string {
	s := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(s[:])
}

// publicJWK is the key as a JWKS entry.
func (k *key) publicJWK() map[string]string {
	m := map[string]string{"kid": k.kid, "alg": k.alg, "use": "sig"}
	for n, v := range k.jwk {
		m[n] = v
	}
	return m
}

// sign signs input with k: Ed25519, or ES256 as JWS wants it (r||s).
// ECDSA is randomized; generation reuses a previous token with the same
// signing input (see reuse), so unchanged vectors keep their bytes.
func (k *key) sign(input string) []byte {
	if k.ed != nil {
		return ed25519.Sign(k.ed, []byte(input))
	}
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.ec, h[:])
	if err != nil {
		panic(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// gen builds the vector files. reuse holds the tokens of the previous
// files by signing input, so an unchanged ES256 token keeps its
// (randomized) bytes.
type gen struct {
	reuse map[string][]string // signing input → whole tokens
}

// compact assembles a JWS from a header (in the order given) and a payload.
func (g *gen) compact(k *key, header [][2]any, payload []byte) string {
	return g.compactRaw(k, b64.EncodeToString(orderedJSON(header)), b64.EncodeToString(payload))
}

// compactRaw signs the two segments as given (a malformed segment included:
// its signature is valid, so the case has one fault).
func (g *gen) compactRaw(k *key, header, payload string) string {
	input := header + "." + payload
	if k.ec != nil {
		for _, tok := range g.reuse[input] {
			if k.verifies(input, tok[len(input)+1:]) {
				return tok
			}
		}
	}
	return input + "." + b64.EncodeToString(k.sign(input))
}

// verifies reports whether sig (base64url) is k's ES256 signature of input.
func (k *key) verifies(input, sig string) bool {
	raw, err := b64.DecodeString(sig)
	if err != nil || len(raw) != 64 {
		return false
	}
	h := sha256.Sum256([]byte(input))
	return ecdsa.Verify(&k.ec.PublicKey, h[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:]))
}

// orderedJSON renders an object with its members in the order given.
func orderedJSON(members [][2]any) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(m[0])
		val, err := json.Marshal(m[1])
		if err != nil {
			panic(err)
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// claims is a token's payload as a map (json.Marshal sorts its keys);
// json.RawMessage values carry numbers exactly as written.
type claims map[string]any

func (c claims) with(edits ...func(claims)) claims {
	out := claims{}
	for k, v := range c {
		out[k] = v
	}
	for _, e := range edits {
		e(out)
	}
	return out
}

func set(name string, v any) func(claims) { return func(c claims) { c[name] = v } }
func del(name string) func(claims)        { return func(c claims) { delete(c, name) } }

func (c claims) bytes() []byte {
	b, err := json.Marshal(map[string]any(c))
	if err != nil {
		panic(err)
	}
	return b
}

// token signs payload with k under Mandate's header (alg, kid, typ at+jwt).
func (g *gen) token(k *key, c claims) string {
	return g.compact(k, [][2]any{{"alg", k.alg}, {"kid", k.kid}, {"typ", "at+jwt"}}, c.bytes())
}

// delegated is the base token of the verification cases: depth 2, held by
// db-agent for orchestrator, through researcher.
func delegated() claims {
	return claims{
		"iss": vecIssuer, "sub": "orchestrator", "sub_iss": vecIssuer, "aud": []string{vecAudience},
		"client_id": "db-agent", "scope": "db:read:orders", "iat": vecNow - 60, "nbf": vecNow - 60, "exp": vecNow + 240,
		"jti": "grand-1", "act": map[string]any{"sub": "db-agent", "act": map[string]any{"sub": "researcher"}},
		"lineage": []string{"root-1", "child-1"},
	}
}

// proof is a DPoP proof by holder for a request, built by hand so its bytes
// are fixed (Ed25519 is deterministic).
func (g *gen) proof(holder *key, header [][2]any, payload claims) string {
	if header == nil {
		header = [][2]any{{"typ", "dpop+jwt"}, {"alg", holder.alg}, {"jwk", holder.jwk}}
	}
	return g.compact(holder, header, payload.bytes())
}

func proofClaims(jti, method, url, token string, iat int64) claims {
	return claims{"jti": jti, "htm": method, "htu": url, "iat": iat, "ath": tokens.AccessTokenHash(token)}
}

// Generate builds every vector file, named as in testdata/vectors. prev is
// the current files (nil for none): a token whose signing input is already
// in them keeps its bytes.
func Generate(prev map[string][]byte) (map[string][]byte, error) {
	g := &gen{reuse: map[string][]string{}}
	for _, data := range prev {
		for _, tok := range findTokens(data) {
			if i := strings.LastIndexByte(tok, '.'); i > 0 {
				g.reuse[tok[:i]] = append(g.reuse[tok[:i]], tok)
			}
		}
	}
	out := map[string][]byte{}
	add := func(name string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		out[name] = append(b, '\n')
		return nil
	}
	if err := add("verify-tokens.json", g.verifyTokens()); err != nil {
		return nil, err
	}
	if err := add("verify-dpop.json", g.verifyDPoP()); err != nil {
		return nil, err
	}
	if err := add("scope.json", scopeVectors()); err != nil {
		return nil, err
	}
	if err := add("feed.json", feedVectors()); err != nil {
		return nil, err
	}
	if err := add("mcp-orders.json", mcpVectors()); err != nil {
		return nil, err
	}
	call, err := callVectors()
	if err != nil {
		return nil, err
	}
	if err := add("call-orders.json", call); err != nil {
		return nil, err
	}
	return out, nil
}

// findTokens returns every "token" and "proof" string of a vector file.
func findTokens(data []byte) []string {
	var f struct {
		Cases []struct {
			Token string `json:"token"`
			DPoP  *struct {
				Proof string `json:"proof"`
			} `json:"dpop"`
		} `json:"cases"`
	}
	if json.Unmarshal(data, &f) != nil {
		return nil
	}
	var out []string
	for _, c := range f.Cases {
		out = append(out, c.Token)
		if c.DPoP != nil {
			out = append(out, c.DPoP.Proof)
		}
	}
	return out
}

// The keys: two in the JWKS, one that is not.
var (
	keyEd    = edKey("EdDSA signing key")
	keyEC    = ecKey("ES256 signing key")
	keyOther = edKey("a key not in the JWKS")
	holder   = edKey("the holder's DPoP key")
	thief    = edKey("a thief's DPoP key")
)

func jwks(keys ...*key) json.RawMessage {
	list := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		list = append(list, k.publicJWK())
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	return b
}

func (g *gen) verifyTokens() *VerifyFile {
	base := delegated()
	tok := func(c claims) string { return g.token(keyEd, c) }
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	good := tok(base)
	parts := strings.Split(good, ".")
	hdr := func(members ...[2]any) string { return b64.EncodeToString(orderedJSON(members)) }
	hmacToken := func() string {
		// HS256 keyed with the JWKS's public key bytes: alg confusion.
		input := hdr([2]any{"alg", "HS256"}, [2]any{"kid", keyEd.kid}, [2]any{"typ", "at+jwt"}) + "." + parts[1]
		m := hmac.New(sha256.New, []byte(keyEd.jwk["x"]))
		m.Write([]byte(input))
		return input + "." + b64.EncodeToString(m.Sum(nil))
	}
	bigScope := strings.Repeat("db:read:orders ", 1200)
	// rawPayload signs the base payload with one textual edit (a member a
	// map cannot hold twice, a name spelt otherwise).
	rawPayload := func(old, new string) string {
		p := string(base.bytes())
		if !strings.Contains(p, old) {
			panic("vectors: " + old + " not in the base payload")
		}
		return g.compactRaw(keyEd, parts[0], b64.EncodeToString([]byte(strings.Replace(p, old, new, 1))))
	}
	cases := []VerifyCase{
		{Name: "ok: EdDSA, depth 2", Token: good, Expect: VerdictOK},
		{Name: "ok: ES256", Token: g.token(keyEC, base.with(set("jti", "grand-es256"))), Expect: VerdictOK},
		{Name: "ok: a root (no act, no lineage)", Token: tok(base.with(set("client_id", "orchestrator"), del("act"), del("lineage"), set("jti", "root-9"))), Expect: VerdictOK},
		{Name: "ok: the audience among several", Token: tok(base.with(set("aud", []string{"https://other.example", vecAudience}))), Expect: VerdictOK},
		{Name: "ok: aud as a single string", Token: tok(base.with(set("aud", vecAudience))), Expect: VerdictOK},
		{Name: "ok: expired within the leeway", Token: tok(base.with(set("exp", vecNow-3))), Expect: VerdictOK},
		{Name: "ok: not yet valid within the leeway", Token: tok(base.with(set("nbf", vecNow+3))), Expect: VerdictOK},
		{Name: "ok: a NumericDate with a fraction", Token: tok(base.with(set("exp", raw("1795770240.75")))), Expect: VerdictOK},
		{Name: "ok: a NumericDate with an exponent", Token: tok(base.with(set("exp", raw("1.79577024e9")))), Expect: VerdictOK},
		{Name: "ok: typ application/at+jwt", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}, {"typ", "application/at+jwt"}}, base.bytes()), Expect: VerdictOK},
		{Name: "ok: an unknown claim is ignored", Token: tok(base.with(set("x-extra", map[string]any{"a": 1}))), Expect: VerdictOK},

		{Name: "malformed: two segments", Token: parts[0] + "." + parts[1], Expect: VerdictMalformed},
		{Name: "malformed: payload not base64url (validly signed)", Token: g.compactRaw(keyEd, parts[0], "***"), Expect: VerdictMalformed},
		{Name: "malformed: padded base64 (validly signed)", Token: g.compactRaw(keyEd, parts[0], parts[1]+"="), Expect: VerdictMalformed},
		{Name: "malformed: payload not JSON", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}, {"typ", "at+jwt"}}, []byte("not json")), Expect: VerdictMalformed},
		{Name: "malformed: payload a JSON array", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}, {"typ", "at+jwt"}}, []byte("[1,2]")), Expect: VerdictMalformed},
		{Name: "malformed: typ JWT", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}, {"typ", "JWT"}}, base.bytes()), Expect: VerdictMalformed},
		{Name: "malformed: no typ", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}}, base.bytes()), Expect: VerdictMalformed},
		{Name: "malformed: a crit header", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}, {"typ", "at+jwt"}, {"crit", []string{"exp"}}, {"exp", 1}}, base.bytes()), Expect: VerdictMalformed},
		{Name: "malformed: exp as a string", Token: tok(base.with(set("exp", "1795770240"))), Expect: VerdictMalformed},
		{Name: "malformed: a NumericDate beyond 2^53", Token: tok(base.with(set("exp", raw("9007199254740993")))), Expect: VerdictMalformed},
		{Name: "malformed: a huge NumericDate exponent", Token: tok(base.with(set("exp", raw("1e400")))), Expect: VerdictMalformed},
		{Name: "ok: a negative NumericDate (iat before 1970) is a date", Token: tok(base.with(set("iat", -1))), Expect: VerdictOK},
		{Name: "malformed: no exp", Token: tok(base.with(del("exp"))), Expect: VerdictMalformed},
		{Name: "malformed: no jti", Token: tok(base.with(del("jti"))), Expect: VerdictMalformed},
		{Name: "malformed: no sub_iss", Token: tok(base.with(del("sub_iss"))), Expect: VerdictMalformed},
		{Name: "malformed: the actor is not the holder", Token: tok(base.with(set("act", map[string]any{"sub": "researcher"}))), Expect: VerdictMalformed},
		{Name: "malformed: more actors than ancestors allow", Token: tok(base.with(set("lineage", []string{"root-1"}),
			set("act", map[string]any{"sub": "db-agent", "act": map[string]any{"sub": "researcher", "act": map[string]any{"sub": "x"}}}))), Expect: VerdictMalformed},
		{Name: "malformed: a root held by another than its subject", Token: tok(base.with(del("act"), del("lineage"))), Expect: VerdictMalformed},
		{Name: "malformed: its own jti in its lineage", Token: tok(base.with(set("lineage", []string{"root-1", "grand-1"}))), Expect: VerdictMalformed},
		{Name: "malformed: a lineage deeper than 32", Token: tok(base.with(set("lineage", lineageOf(33)))), Expect: VerdictMalformed},
		{Name: "malformed: a scope with a tab", Token: tok(base.with(set("scope", "db:read:orders\tdb:write:orders"))), Expect: VerdictMalformed},
		{Name: "malformed: a scope with a look-alike colon (U+A789)", Token: tok(base.with(set("scope", "db\ua789read:orders"))), Expect: VerdictMalformed},
		{Name: "malformed: a scope of 257 bytes", Token: tok(base.with(set("scope", "db:read:"+strings.Repeat("o", 249)))), Expect: VerdictMalformed},
		{Name: "malformed: cnf without jkt", Token: tok(base.with(set("cnf", map[string]any{"x5t#S256": "abc"}))), Expect: VerdictMalformed},
		{Name: "malformed: a token over 16 KiB", Token: tok(base.with(set("x-pad", bigScope))), Expect: VerdictMalformed},
		{Name: "malformed: a claim twice (exp)", Token: rawPayload(`"exp":1795770240`, `"exp":1795770240,"exp":1795770300`), Expect: VerdictMalformed},
		{Name: "malformed: a claim in upper case (EXP)", Token: rawPayload(`"exp":`, `"EXP":`), Expect: VerdictMalformed},
		{Name: "malformed: a claim spelt with a folding letter (U+017F for s)", Token: rawPayload(`"sub":`, "\"\u017fub\":"), Expect: VerdictMalformed},
		{Name: "malformed: the lineage twice", Token: rawPayload(`"lineage":["root-1","child-1"]`, `"lineage":["root-1","child-1"],"lineage":["child-1"]`), Expect: VerdictMalformed},
		{Name: "malformed: an actor's sub twice", Token: rawPayload(`"sub":"researcher"`, `"sub":"researcher","sub":"mallory"`), Expect: VerdictMalformed},
		{Name: "malformed: a header member twice (kid)", Token: g.compactRaw(keyEd, b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+keyEd.kid+`","kid":"`+keyEd.kid+`","typ":"at+jwt"}`)), parts[1]), Expect: VerdictMalformed},
		{Name: "malformed: a header member in upper case (ALG)", Token: g.compactRaw(keyEd, b64.EncodeToString([]byte(`{"alg":"EdDSA","ALG":"EdDSA","kid":"`+keyEd.kid+`","typ":"at+jwt"}`)), parts[1]), Expect: VerdictMalformed},

		{Name: "invalid_signature: alg none", Token: hdr([2]any{"alg", "none"}, [2]any{"kid", keyEd.kid}, [2]any{"typ", "at+jwt"}) + "." + parts[1] + ".", Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: HS256 keyed with the public key (alg confusion)", Token: hmacToken(), Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: ES256 header on the EdDSA key", Token: hdr([2]any{"alg", "ES256"}, [2]any{"kid", keyEd.kid}, [2]any{"typ", "at+jwt"}) + "." + parts[1] + "." + parts[2], Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: an unknown kid", Token: g.compact(keyOther, [][2]any{{"alg", "EdDSA"}, {"kid", keyOther.kid}, {"typ", "at+jwt"}}, base.bytes()), Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: signed by another key under a published kid", Token: g.compact(keyOther, [][2]any{{"alg", "EdDSA"}, {"kid", keyEd.kid}, {"typ", "at+jwt"}}, base.bytes()), Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: a grafted lineage (payload changed after signing)", Token: parts[0] + "." + b64.EncodeToString(base.with(set("lineage", []string{"child-1"}), set("act", map[string]any{"sub": "db-agent"})).bytes()) + "." + parts[2], Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: a widened scope (payload changed after signing)", Token: parts[0] + "." + b64.EncodeToString(base.with(set("scope", "db:*")).bytes()) + "." + parts[2], Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: the signature of another token", Token: parts[0] + "." + parts[1] + "." + strings.Split(tok(base.with(set("jti", "other"))), ".")[2], Expect: VerdictInvalidSignature},
		{Name: "invalid_signature: no kid", Token: g.compact(keyEd, [][2]any{{"alg", "EdDSA"}, {"typ", "at+jwt"}}, base.bytes()), Expect: VerdictInvalidSignature},

		{Name: "wrong_issuer: another issuer", Token: tok(base.with(set("iss", "https://evil.example"))), Expect: VerdictWrongIssuer},
		{Name: "wrong_issuer: the issuer with a trailing slash", Token: tok(base.with(set("iss", vecIssuer+"/"))), Expect: VerdictWrongIssuer},
		{Name: "wrong_audience: another API", Token: tok(base.with(set("aud", []string{"https://other.example"}))), Expect: VerdictWrongAudience},
		{Name: "wrong_audience: the audience in upper case", Token: tok(base.with(set("aud", []string{strings.ToUpper(vecAudience)}))), Expect: VerdictWrongAudience},
		{Name: "wrong_audience: Mandate's own audience (an identity token)", Token: tok(base.with(set("aud", []string{vecIssuer}), set("scope", ""))), Expect: VerdictWrongAudience},
		{Name: "not_yet_valid: nbf a minute ahead", Token: tok(base.with(set("nbf", vecNow+60))), Expect: VerdictNotYetValid},
		{Name: "not_yet_valid: iat a minute ahead", Token: tok(base.with(set("iat", vecNow+60), set("nbf", vecNow-60))), Expect: VerdictNotYetValid},
		{Name: "expired: ten seconds ago", Token: tok(base.with(set("exp", vecNow-10))), Expect: VerdictExpired},
		{Name: "revoked: the token itself", Token: tok(base.with(set("jti", "revoked-leaf"))), Expect: VerdictRevoked},
		{Name: "revoked: its root", Token: tok(base.with(set("lineage", []string{"revoked-root", "child-1"}), set("jti", "grand-of-revoked-root"))), Expect: VerdictRevoked},
		{Name: "revoked: its parent", Token: tok(base.with(set("lineage", []string{"root-1", "revoked-child"}), set("jti", "grand-of-revoked-child"))), Expect: VerdictRevoked},
		{Name: "sender_constrained: a bound token as bearer", Token: tok(base.with(set("cnf", map[string]any{"jkt": holderJKT()}), set("jti", "bound-1"))), Expect: VerdictSenderConstrained},

		{Name: "order: expired and revoked reports expired", Token: tok(base.with(set("exp", vecNow-10), set("jti", "revoked-leaf"))), Expect: VerdictExpired},
		{Name: "order: wrong issuer and wrong audience reports wrong_issuer", Token: tok(base.with(set("iss", "https://evil.example"), set("aud", []string{"https://other.example"}))), Expect: VerdictWrongIssuer},
		{Name: "order: malformed structure and expired reports malformed", Token: tok(base.with(del("sub_iss"), set("exp", vecNow-10))), Expect: VerdictMalformed},
	}
	return &VerifyFile{
		Comment: "Verification vectors (testdata/vectors/README.md): verify each case in order with one verifier configured by this file; a case without dpop is presented as a Bearer token.",
		Now:     vecNow, Issuer: vecIssuer, Audience: vecAudience, LeewaySeconds: vecLeeway,
		JWKS: jwks(keyEd, keyEC), Revoked: []string{"revoked-leaf", "revoked-root", "revoked-child"}, PublicURL: vecPublic,
		Cases: cases,
	}
}

func lineageOf(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("a%02d", i)
	}
	return out
}

func holderJKT() string {
	return thumbprint(`{"crv":"Ed25519","kty":"OKP","x":"` + holder.jwk["x"] + `"}`)
}

func (g *gen) verifyDPoP() *VerifyFile {
	bound := g.token(keyEd, delegated().with(set("cnf", map[string]any{"jkt": holderJKT()}), set("jti", "bound-1")))
	bearer := g.token(keyEd, delegated())
	p := func(jti, method, url string, iat int64, tok string) string {
		return g.proof(holder, nil, proofClaims(jti, method, url, tok, iat))
	}
	dp := func(proof string) *DPoPProof { return &DPoPProof{Proof: proof, Method: "GET", URL: vecURL} }
	first := p("p-1", "GET", vecURL, vecNow, bound)
	noAth := g.proof(holder, nil, proofClaims("p-noath", "GET", vecURL, bound, vecNow).with(del("ath")))
	badAth := g.proof(holder, nil, proofClaims("p-badath", "GET", vecURL, bound, vecNow).with(set("ath", tokens.AccessTokenHash(bearer))))
	cases := []VerifyCase{
		{Name: "ok: a bound token with a fresh proof", Token: bound, DPoP: dp(first), Expect: VerdictOK},
		{Name: "ok: htu with another case in scheme and host", Token: bound, DPoP: dp(p("p-2", "GET", "HTTPS://API.EXAMPLE/orders", vecNow, bound)), Expect: VerdictOK},
		{Name: "ok: htu with a query (compared without it)", Token: bound, DPoP: dp(p("p-3", "GET", vecURL+"?page=2", vecNow, bound)), Expect: VerdictOK},
		{Name: "ok: iat a few seconds old", Token: bound, DPoP: dp(p("p-4", "GET", vecURL, vecNow-4, bound)), Expect: VerdictOK},
		{Name: "invalid_dpop_proof: replayed (the first proof again)", Token: bound, DPoP: dp(first), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: for another method", Token: bound, DPoP: dp(p("p-5", "POST", vecURL, vecNow, bound)), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: for another URL", Token: bound, DPoP: dp(p("p-6", "GET", "https://api.example/admin", vecNow, bound)), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: for another host", Token: bound, DPoP: dp(p("p-7", "GET", "https://evil.example/orders", vecNow, bound)), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: made two minutes ago", Token: bound, DPoP: dp(p("p-8", "GET", vecURL, vecNow-120, bound)), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: made two minutes ahead", Token: bound, DPoP: dp(p("p-9", "GET", vecURL, vecNow+120, bound)), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: without ath", Token: bound, DPoP: dp(noAth), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: ath of another token", Token: bound, DPoP: dp(badAth), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: made by another key", Token: bound, DPoP: dp(g.proof(thief, nil, proofClaims("p-10", "GET", vecURL, bound, vecNow))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: typ JWT", Token: bound, DPoP: dp(g.proof(holder, [][2]any{{"typ", "JWT"}, {"alg", "EdDSA"}, {"jwk", holder.jwk}}, proofClaims("p-11", "GET", vecURL, bound, vecNow))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: typ in upper case (DPOP+JWT)", Token: bound, DPoP: dp(g.proof(holder, [][2]any{{"typ", "DPOP+JWT"}, {"alg", "EdDSA"}, {"jwk", holder.jwk}}, proofClaims("p-15", "GET", vecURL, bound, vecNow))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: typ application/dpop+jwt", Token: bound, DPoP: dp(g.proof(holder, [][2]any{{"typ", "application/dpop+jwt"}, {"alg", "EdDSA"}, {"jwk", holder.jwk}}, proofClaims("p-16", "GET", vecURL, bound, vecNow))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: htm twice", Token: bound, DPoP: dp(g.compactRaw(holder, b64.EncodeToString(orderedJSON([][2]any{{"typ", "dpop+jwt"}, {"alg", "EdDSA"}, {"jwk", holder.jwk}})),
			b64.EncodeToString([]byte(strings.Replace(string(proofClaims("p-17", "GET", vecURL, bound, vecNow).bytes()), `"htm":"GET"`, `"htm":"POST","htm":"GET"`, 1))))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: no jwk", Token: bound, DPoP: dp(g.proof(holder, [][2]any{{"typ", "dpop+jwt"}, {"alg", "EdDSA"}}, proofClaims("p-12", "GET", vecURL, bound, vecNow))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: no jti", Token: bound, DPoP: dp(g.proof(holder, nil, proofClaims("", "GET", vecURL, bound, vecNow).with(del("jti")))), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: not a JWS", Token: bound, DPoP: dp("not-a-proof"), Expect: VerdictInvalidDPoPProof},
		{Name: "invalid_dpop_proof: an unbound token with a proof", Token: bearer, DPoP: dp(p("p-13", "GET", vecURL, vecNow, bearer)), Expect: VerdictInvalidDPoPProof},
		{Name: "sender_constrained: the bound token without its proof", Token: bound, Expect: VerdictSenderConstrained},
		{Name: "order: a revoked bound token with a good proof reports revoked", Token: g.token(keyEd, delegated().with(set("cnf", map[string]any{"jkt": holderJKT()}), set("jti", "revoked-leaf"))),
			DPoP: dp(p("p-14", "GET", vecURL, vecNow, g.token(keyEd, delegated().with(set("cnf", map[string]any{"jkt": holderJKT()}), set("jti", "revoked-leaf"))))), Expect: VerdictRevoked},
	}
	return &VerifyFile{
		Comment: "DPoP vectors (testdata/vectors/README.md): the cases share one replay cache and run in order; the request of each is dpop.method dpop.url.",
		Now:     vecNow, Issuer: vecIssuer, Audience: vecAudience, LeewaySeconds: vecLeeway,
		JWKS: jwks(keyEd, keyEC), Revoked: []string{"revoked-leaf"}, PublicURL: vecPublic,
		Cases: cases,
	}
}

func scopeVectors() *ScopeFile {
	q := func(p, c string, want bool) []any { return []any{p, c, want} }
	return &ScopeFile{
		Comment: "Scope coverage (chain.Covers): does the parent scope grant the child scope?",
		Covers: [][]any{
			q("db:read:orders", "db:read:orders", true),
			q("db:read:*", "db:read:orders", true),
			q("db:read:*", "db:read:orders:archive", true),
			q("db:*", "db:read:orders", true),
			q("*", "db:write:orders", true),
			q("*", "*", true),
			q("db:read:*", "db:read:*", true),
			q("db:*", "db:read:*", true),
			q("db:read:*", "db:*", false),
			q("db:read:*", "db:write:orders", false),
			q("db:read:*", "db:read", false),
			q("db:read:*", "db:read:", true),
			q("db:read:orders", "db:read:orders:archive", false),
			q("db:read:orders", "db:read:*", false),
			q("db:read:orders", "db:read:order", false),
			q("db:read:order", "db:read:orders", false),
			q("db:read:orders", "DB:READ:ORDERS", false),
			q("db:read:*", "db\ua789read:orders", false),
			q("db:read:*", "db:read:*x", true),
			q("db*", "db:read", false),
			q("db:*:orders", "db:read:orders", false),
			q("db:*:orders", "db:*:orders", true),
			q("tools:search", "tools:search", true),
			q("tools:*", "tools", false),
			q("", "", true),
		},
	}
}

// callVectors are per-call decisions with the orders API's policy set
// (testdata/policies/api), as every language's verifier makes them.
func callVectors() (*CallFile, error) {
	dir := filepath.Join(repoRoot(), "testdata", "policies", "api")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	f := &CallFile{Comment: "Per-call Cedar decisions (docs/policy.md): the request the verifier builds from a verified chain; any evaluation error denies."}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".cedar") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		f.Policies = append(f.Policies, CallPolicy{Name: n, Source: string(b)})
	}
	// A policy that fails to evaluate (an attribute no context has): a
	// forbid that errors must deny, whatever the libraries do by default.
	f.Policies = append(f.Policies, CallPolicy{Name: "failing.cedar", Source: `// A forbid whose condition fails to evaluate for the audit table.
@id("audit-needs-clearance")
forbid (principal, action == Action::"call", resource == Table::"audit")
when { context.clearance < 3 };

@id("audit-read")
permit (principal, action == Action::"call", resource == Table::"audit")
when { context.scope_patterns.contains("db:read:orders") };
`})
	ch := func(depth int, scopes ...string) CallChain {
		lineage := lineageOf(depth)
		actors := []string{}
		if depth > 0 {
			actors = []string{"db-agent", "researcher"}[:min(depth, 2)]
		}
		root := "task-1"
		if depth > 0 {
			root = lineage[0]
		}
		return CallChain{Subject: "orchestrator", SubjectIssuer: vecIssuer, Holder: "db-agent", Actors: actors, Depth: depth,
			Scopes: scopes, Audiences: []string{vecAudience}, Root: root, Lineage: lineage}
	}
	orders := CallRes{Type: "Table", ID: "orders"}
	f.Cases = []CallCase{
		{Name: "allow: db:read:orders itself", Action: "call", Resource: orders, Chain: ch(2, "db:read:orders"), Expect: "allow", Policies: []string{"orders-read"}},
		{Name: "allow: db:read:* grants db:read:orders", Action: "call", Resource: orders, Chain: ch(1, "db:read:*"), Expect: "allow", Policies: []string{"orders-read"}},
		{Name: "allow: * grants it", Action: "call", Resource: orders, Chain: ch(0, "*"), Expect: "allow", Policies: []string{"orders-read"}},
		{Name: "allow: db:* grants it, among other scopes", Action: "call", Resource: orders, Chain: ch(1, "tools:search", "db:*"), Expect: "allow", Policies: []string{"orders-read"}},
		{Name: "deny: db:read:customers does not", Action: "call", Resource: orders, Chain: ch(1, "db:read:customers"), Expect: "deny", Policies: []string{}},
		{Name: "deny: db:write:orders does not", Action: "call", Resource: orders, Chain: ch(1, "db:write:orders"), Expect: "deny", Policies: []string{}},
		{Name: "deny: a look-alike colon does not", Action: "call", Resource: orders, Chain: ch(1, "db\ua789read:orders"), Expect: "deny", Policies: []string{}},
		{Name: "deny: depth 4 is beyond the forbid", Action: "call", Resource: orders, Chain: ch(4, "db:read:orders"), Expect: "deny", Policies: []string{"orders-depth-limit"}},
		{Name: "allow: depth 3 is within it", Action: "call", Resource: orders, Chain: ch(3, "db:read:orders"), Expect: "allow", Policies: []string{"orders-read"}},
		{Name: "deny: another table", Action: "call", Resource: CallRes{Type: "Table", ID: "customers"}, Chain: ch(1, "db:read:*"), Expect: "deny", Policies: []string{}},
		{Name: "deny: another action", Action: "write", Resource: orders, Chain: ch(1, "db:read:*"), Expect: "deny", Policies: []string{}},
		{Name: "deny: a forbid that fails to evaluate denies", Action: "call", Resource: CallRes{Type: "Table", ID: "audit"}, Chain: ch(1, "db:read:orders"), Expect: "deny", Policies: []string{"audit-needs-clearance"}},
	}
	for i := range f.Cases {
		if f.Cases[i].Groups == nil {
			f.Cases[i].Groups = []string{}
		}
	}
	return f, nil
}

// repoRoot finds the repository root (where go.mod is) from the working
// directory, for the policy files the call vectors embed.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
