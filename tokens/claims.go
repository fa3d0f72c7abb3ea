package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
)

// TypeAccessToken is the JWS "typ" header of every Mandate token (RFC 9068 §2.1).
const TypeAccessToken = "at+jwt"

// Actor is one link of the RFC 8693 §4.1 actor chain: Subject is the agent
// acting at this link, Act the link before it (older), or nil.
type Actor struct {
	Subject string `json:"sub"`
	Issuer  string `json:"iss,omitempty"`
	Act     *Actor `json:"act,omitempty"`
}

// Path returns the actor subjects newest first: the current actor, then the
// earlier ones. A nil actor has an empty path.
func (a *Actor) Path() []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Subject)
	}
	return out
}

// Depth counts the links of the chain; zero for nil.
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Act {
		n++
	}
	return n
}

// Confirmation is the RFC 7800 "cnf" claim; JKT is the RFC 9449 JWK SHA-256
// thumbprint of the key a sender-constrained token is bound to.
type Confirmation struct {
	JKT string `json:"jkt,omitempty"`
}

// Claims is the payload of a Mandate token. Audience and Lineage always encode
// as arrays ([] when empty); Scope is the space-separated RFC 6749 form.
type Claims struct {
	Issuer    string        `json:"iss"`
	Subject   string        `json:"sub"`
	Audience  Audience      `json:"aud"`
	ClientID  string        `json:"client_id"`
	Scope     string        `json:"scope"`
	IssuedAt  int64         `json:"iat"`
	NotBefore int64         `json:"nbf"`
	Expiry    int64         `json:"exp"`
	ID        string        `json:"jti"`
	Act       *Actor        `json:"act,omitempty"`
	Lineage   []string      `json:"lineage"`
	Cnf       *Confirmation `json:"cnf,omitempty"`
	MayAct    *Actor        `json:"may_act,omitempty"`
}

// Depth is the number of ancestors: 0 for a root token.
func (c *Claims) Depth() int { return len(c.Lineage) }

// Root returns the jti of the chain's root token (the task id): the first
// lineage entry, or the token's own jti when it is a root.
func (c *Claims) Root() string {
	if len(c.Lineage) > 0 {
		return c.Lineage[0]
	}
	return c.ID
}

// MarshalJSON encodes nil Audience and Lineage as [] so a root token reads
// "lineage": [] as the wire contract says.
func (c Claims) MarshalJSON() ([]byte, error) {
	type plain Claims
	p := plain(c)
	if p.Audience == nil {
		p.Audience = Audience{}
	}
	if p.Lineage == nil {
		p.Lineage = []string{}
	}
	return json.Marshal(p)
}

// Audience is the "aud" claim. Mandate always writes an array; it reads either
// an array or a single string (RFC 7519 §4.1.3), as external issuers send both.
type Audience []string

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = Audience{s}
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*a = nil
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New(`"aud" must be a string or an array of strings`)
	}
	*a = list
	return nil
}

// Contains reports whether v is one of the audiences.
func (a Audience) Contains(v string) bool {
	for _, s := range a {
		if s == v {
			return true
		}
	}
	return false
}
