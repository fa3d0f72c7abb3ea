// Package jwt is the payload of Mandate's tokens and of every JWT Mandate
// reads: the RFC 7519 registered claims, the RFC 8693 actor chain ("act",
// "may_act"), Mandate's "lineage" and the RFC 7800 confirmation ("cnf").
//
// It decodes and encodes, nothing more: no signature, no clock, no key. What
// a token must satisfy is decided in package chain (the claim checks every
// verifier shares); how it is signed, in package tokens. It imports only the
// standard library, so the pure chain rules can use these types without
// pulling in a JOSE library or net/http.
//
// Invariants: a NumericDate beyond ±2^53 seconds, or that is not a JSON
// number, is malformed wherever it appears (exp, nbf, iat, a proof's iat), so
// every reader of a date agrees on what it means; Mandate always writes "aud"
// and "lineage" as arrays.
package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed reports a payload that is not a JSON object of well-formed
// claims, or a compact token that cannot even be split into its parts.
var ErrMalformed = errors.New("malformed token")

// NumericDate is an RFC 7519 §2 NumericDate: seconds since the Unix epoch.
// A fractional value is read as its whole second (rounded down); zero means
// the claim is absent. Values beyond ±2^53 (past which a JSON number is no
// longer an exact integer in most languages) and anything but a number are
// refused when decoding, so no reader clamps a huge date one way while
// another clamps it the other.
type NumericDate int64

// MaxNumericDate is the largest magnitude a NumericDate may have (2^53).
const MaxNumericDate = 1 << 53

// At is the NumericDate of t (its whole second).
func At(t time.Time) NumericDate { return NumericDate(t.Unix()) }

// Time is the instant d names, in UTC.
func (d NumericDate) Time() time.Time { return time.Unix(int64(d), 0).UTC() }

// IsZero reports whether the claim was absent (or zero).
func (d NumericDate) IsZero() bool { return d == 0 }

// UnmarshalJSON reads a JSON number within ±2^53; null leaves the date absent.
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	s := string(b)
	if s == "null" {
		return nil
	}
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return fmt.Errorf("a NumericDate must be a number, not %s", Excerpt(s))
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > MaxNumericDate || n < -MaxNumericDate {
			return fmt.Errorf("NumericDate %s is beyond ±2^53", Excerpt(s))
		}
		*d = NumericDate(n)
		return nil
	}
	// A fraction or an exponent: read exactly, as a rational (a float
	// would round 2^53+0.5 into range, or 1.000…0 below 1).
	n, err := floorNumber(s)
	if err != nil {
		return fmt.Errorf("%v: %s", err, Excerpt(s))
	}
	*d = NumericDate(n)
	return nil
}

var errBeyond = errors.New("NumericDate is beyond ±2^53")

// floorNumber is the floor of a JSON number with a fraction or an exponent,
// exactly, or errBeyond. The exponent is bounded before any arithmetic, so
// 1e999999999 costs nothing.
func floorNumber(s string) (int64, error) {
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.ParseInt(strings.TrimPrefix(s[i+1:], "+"), 10, 64)
		if err != nil {
			e = math.MaxInt64 // an exponent too long to read is out of range either way
			if strings.HasPrefix(s[i+1:], "-") {
				e = math.MinInt64
			}
		}
		exp = e
	}
	zero := strings.Trim(mant, "-0.") == ""
	neg := strings.HasPrefix(mant, "-")
	switch {
	case zero:
		return 0, nil
	case exp > 400: // beyond 10^400: out of range whatever the mantissa (at most 16 KiB of digits)
		if int64(len(mant)) < exp {
			return 0, errBeyond
		}
	case exp < -20000: // below 10^-20000 · 10^16384: strictly between -1 and 1
		if neg {
			return -1, nil
		}
		return 0, nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errors.New("a NumericDate must be a number")
	}
	if new(big.Rat).Abs(r).Cmp(new(big.Rat).SetInt64(MaxNumericDate)) > 0 {
		return 0, errBeyond
	}
	q := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean, the floor for a positive denominator
	return q.Int64(), nil
}

// Registered is the part of a JWT's claims that every kind of token Mandate
// reads shares (RFC 7519 §4.1): what package chain's claim checks look at.
// Claim structs of other tokens embed it.
type Registered struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  Audience    `json:"aud"`
	Expiry    NumericDate `json:"exp"`
	NotBefore NumericDate `json:"nbf"`
	IssuedAt  NumericDate `json:"iat"`
	ID        string      `json:"jti"`
}

// RegisteredClaims returns the registered claims themselves, so a struct that
// embeds Registered offers the same method as Claims.
func (r Registered) RegisteredClaims() Registered { return r }

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
// SubjectIssuer ("sub_iss") is the issuer of the subject: Mandate's own for a
// client, the identity provider's for an external subject, so a user of an
// IdP named like a client is never mistaken for it.
type Claims struct {
	Issuer        string        `json:"iss"`
	Subject       string        `json:"sub"`
	SubjectIssuer string        `json:"sub_iss"`
	Audience      Audience      `json:"aud"`
	ClientID      string        `json:"client_id"`
	Scope         string        `json:"scope"`
	IssuedAt      NumericDate   `json:"iat"`
	NotBefore     NumericDate   `json:"nbf"`
	Expiry        NumericDate   `json:"exp"`
	ID            string        `json:"jti"`
	Act           *Actor        `json:"act,omitempty"`
	Lineage       []string      `json:"lineage"`
	Cnf           *Confirmation `json:"cnf,omitempty"`
	MayAct        *Actor        `json:"may_act,omitempty"`
}

// RegisteredClaims returns the claims every verifier checks the same way.
func (c *Claims) RegisteredClaims() Registered {
	return Registered{Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		Expiry: c.Expiry, NotBefore: c.NotBefore, IssuedAt: c.IssuedAt, ID: c.ID}
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

// JKT is the thumbprint of the key the token is bound to, or "" for a bearer token.
func (c *Claims) JKT() string {
	if c.Cnf == nil {
		return ""
	}
	return c.Cnf.JKT
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

// Parse decodes a payload (already verified, or only to be displayed) into
// Claims, refusing members that decoders read differently (CheckMembers).
func Parse(payload []byte) (*Claims, error) {
	if err := CheckMembers(payload); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return &c, nil
}

// Unverified reads a compact token's claims WITHOUT checking its signature,
// for display and a holder's bookkeeping (its expiry, whether it is bound);
// never decide anything on them: tokens.Verify and the chain checks do.
func Unverified(token string) (*Claims, error) {
	_, payload, ok := strings.Cut(token, ".")
	if ok {
		payload, _, ok = strings.Cut(payload, ".")
	}
	if !ok {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload", ErrMalformed)
	}
	return Parse(raw)
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

// Excerpt makes untrusted text (a claim, a header value, a request
// parameter) safe to put in an error description, a log line or the audit
// trail: at most 64 bytes, and control and non-ASCII characters become '?',
// so no input can forge a line, an escape sequence or a look-alike name. The
// one function every package uses for that.
func Excerpt(s string) string {
	cut := len(s) > 64
	if cut {
		s = s[:64]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return s
}
