// Package vectors holds Mandate's cross-language test vectors and the Go
// reference runner for them. The vector files (testdata/vectors in the
// repository) are generated from this package with fixed keys and a fixed
// clock; every language's verifier runs them and must reach the same
// verdicts. The file formats and the verdict classes are fixed by
// testdata/vectors/README.md: a verification file lists tokens (and DPoP
// proofs) with the verdict a resource server must reach; a scope file lists
// coverage questions; a call file lists per-call Cedar decisions; a feed
// file scripts the revocation feed's pages and what a follower then reports.
//
// `mandate vectors verify FILE` runs a file through Run and prints one JSON
// line per case, so any verifier can be held to any vector file.
package vectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

// The verdicts, in the order a verifier checks (a case with several faults
// reports the first).
const (
	VerdictOK                = "ok"
	VerdictMalformed         = "malformed"
	VerdictInvalidSignature  = "invalid_signature"
	VerdictWrongIssuer       = "wrong_issuer"
	VerdictWrongAudience     = "wrong_audience"
	VerdictNotYetValid       = "not_yet_valid"
	VerdictExpired           = "expired"
	VerdictRevoked           = "revoked"
	VerdictSenderConstrained = "sender_constrained"
	VerdictInvalidDPoPProof  = "invalid_dpop_proof"
)

// Verdicts lists every verdict in check order.
var Verdicts = []string{VerdictOK, VerdictMalformed, VerdictInvalidSignature, VerdictWrongIssuer, VerdictWrongAudience,
	VerdictNotYetValid, VerdictExpired, VerdictRevoked, VerdictSenderConstrained, VerdictInvalidDPoPProof}

// VerifyFile is a verification vector file: a resource server's settings
// (its clock, issuer, audience, leeway, keys, the revoked jtis its feed
// reported, its public URL) and the cases to verify, in order (the DPoP
// replay cache is shared by the cases of a file).
type VerifyFile struct {
	Comment       string          `json:"comment,omitempty"`
	Now           int64           `json:"now"`
	Issuer        string          `json:"issuer"`
	Audience      string          `json:"audience"`
	LeewaySeconds int64           `json:"leeway_seconds"`
	JWKS          json.RawMessage `json:"jwks"`
	Revoked       []string        `json:"revoked"`
	PublicURL     string          `json:"public_url"`
	Cases         []VerifyCase    `json:"cases"`
}

// VerifyCase is one token, presented as a bearer token or, with DPoP, with a
// proof for a request.
type VerifyCase struct {
	Name   string     `json:"name"`
	Token  string     `json:"token"`
	DPoP   *DPoPProof `json:"dpop,omitempty"`
	Expect string     `json:"expect"`
}

// DPoPProof is the proof sent with a DPoP case and the request it is for.
type DPoPProof struct {
	Proof  string `json:"proof"`
	Method string `json:"method"`
	URL    string `json:"url"`
}

// ScopeFile is a scope vector file: does a parent scope cover a child scope
// (chain.Covers)?
type ScopeFile struct {
	Comment string  `json:"comment,omitempty"`
	Covers  [][]any `json:"covers"`
}

// CallFile is a per-call Cedar vector file: a policy set (inline, as files)
// and requests the way a resource server's verifier builds them, with the
// decision every language must reach.
type CallFile struct {
	Comment  string       `json:"comment,omitempty"`
	Policies []CallPolicy `json:"policies"`
	Cases    []CallCase   `json:"cases"`
}

// CallPolicy is one policy file of a call vector's policy set.
type CallPolicy struct {
	Name   string `json:"name"`
	Source string `json:"source"`
}

// CallCase is one per-call request: the holder and its groups, the action,
// the resource and the verified chain's facts.
type CallCase struct {
	Name     string    `json:"name"`
	Groups   []string  `json:"groups"`
	Action   string    `json:"action"`
	Resource CallRes   `json:"resource"`
	Chain    CallChain `json:"chain"`
	// Expect is "allow" or "deny"; Policies the ids of the policies that
	// determined it (sorted; empty for Cedar's default deny).
	Expect   string   `json:"expect"`
	Policies []string `json:"policies"`
}

// CallRes is the Cedar resource of a call.
type CallRes struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// CallChain is what the verifier learned from the token: the context of a
// per-call decision (docs/policy.md).
type CallChain struct {
	Subject       string   `json:"subject"`
	SubjectIssuer string   `json:"sub_iss"`
	Holder        string   `json:"holder"`
	Actors        []string `json:"actors"`
	Depth         int      `json:"depth"`
	Scopes        []string `json:"scopes"`
	Audiences     []string `json:"audiences"`
	Root          string   `json:"root"`
	Lineage       []string `json:"lineage"`
	Bound         bool     `json:"bound"`
}

// Result is one case's outcome, as the runners print it: the verdict (a
// string for verification and call files, a boolean for scope files).
type Result struct {
	Name    string `json:"name"`
	Verdict any    `json:"verdict"`
}

// Verdict classifies a verifier error into its verdict ("ok" for nil).
func Verdict(err error) string {
	switch {
	case err == nil:
		return VerdictOK
	case errors.Is(err, verifier.ErrMalformedToken):
		return VerdictMalformed
	case errors.Is(err, verifier.ErrInvalidSignature):
		return VerdictInvalidSignature
	case errors.Is(err, verifier.ErrWrongIssuer):
		return VerdictWrongIssuer
	case errors.Is(err, verifier.ErrWrongAudience):
		return VerdictWrongAudience
	case errors.Is(err, verifier.ErrNotYetValid):
		return VerdictNotYetValid
	case errors.Is(err, verifier.ErrExpired):
		return VerdictExpired
	case errors.Is(err, verifier.ErrRevoked):
		return VerdictRevoked
	case errors.Is(err, verifier.ErrSenderConstrained):
		return VerdictSenderConstrained
	case errors.Is(err, verifier.ErrInvalidDPoPProof):
		return VerdictInvalidDPoPProof
	}
	return "error: " + err.Error()
}

// Run reads a vector file of any kind and returns each case's verdict, by
// the Go reference implementation.
func Run(data []byte) ([]Result, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("vectors: not a JSON object: %w", err)
	}
	switch {
	case probe["covers"] != nil:
		var f ScopeFile
		if err := strictUnmarshal(data, &f); err != nil {
			return nil, err
		}
		return RunScope(&f)
	case probe["server"] != nil:
		var f MCPFile
		if err := strictUnmarshal(data, &f); err != nil {
			return nil, err
		}
		return RunMCP(&f)
	case probe["policies"] != nil:
		var f CallFile
		if err := strictUnmarshal(data, &f); err != nil {
			return nil, err
		}
		return RunCall(&f)
	case probe["max_staleness_seconds"] != nil:
		var f FeedFile
		if err := strictUnmarshal(data, &f); err != nil {
			return nil, err
		}
		return RunFeed(&f)
	case probe["jwks"] != nil:
		var f VerifyFile
		if err := strictUnmarshal(data, &f); err != nil {
			return nil, err
		}
		return RunVerify(&f)
	}
	return nil, errors.New("vectors: neither a verification (jwks), a scope (covers), a call (policies), an MCP (server) nor a feed (max_staleness_seconds) file")
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("vectors: %w", err)
	}
	return nil
}

// RunVerify verifies every case of f, in order, with one offline verifier
// configured as f says.
func RunVerify(f *VerifyFile) ([]Result, error) {
	keys, err := tokens.NewSetResolver(f.JWKS)
	if err != nil {
		return nil, fmt.Errorf("vectors: jwks: %w", err)
	}
	now := time.Unix(f.Now, 0).UTC()
	v, err := verifier.New(verifier.Config{Issuer: f.Issuer, Audience: f.Audience, Leeway: time.Duration(f.LeewaySeconds) * time.Second,
		PublicURL: f.PublicURL, Now: func() time.Time { return now }}, keys, verifier.NewRevocationSet(f.Revoked...))
	if err != nil {
		return nil, fmt.Errorf("vectors: %w", err)
	}
	defer v.Close()
	out := make([]Result, 0, len(f.Cases))
	for _, c := range f.Cases {
		if c.DPoP != nil {
			_, err = v.VerifyDPoP(context.Background(), c.Token, c.DPoP.Proof, c.DPoP.Method, c.DPoP.URL)
		} else {
			_, err = v.Verify(context.Background(), c.Token)
		}
		out = append(out, Result{Name: c.Name, Verdict: Verdict(err)})
	}
	return out, nil
}

// RunScope answers every coverage question of f with chain.Covers.
func RunScope(f *ScopeFile) ([]Result, error) {
	out := make([]Result, 0, len(f.Covers))
	for i, q := range f.Covers {
		if len(q) != 3 {
			return nil, fmt.Errorf("vectors: covers[%d]: want [parent, child, bool]", i)
		}
		p, ok1 := q[0].(string)
		c, ok2 := q[1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("vectors: covers[%d]: parent and child must be strings", i)
		}
		out = append(out, Result{Name: ScopeName(p, c), Verdict: chain.Covers(p, c)})
	}
	return out, nil
}

// ScopeName is how runners name a coverage question.
func ScopeName(parent, child string) string { return parent + " ⊇ " + child }

// RunCall decides every case of f with the policy set of f, as a resource
// server's verifier does (chain/authz).
func RunCall(f *CallFile) ([]Result, error) {
	set, err := policySet(f.Policies)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(f.Cases))
	for _, c := range f.Cases {
		r := c.Chain.request(c.Groups)
		r.Action, r.Resource = policy.Action(c.Action), policy.Entity{Type: c.Resource.Type, ID: c.Resource.ID}
		d := set.AuthorizeCall(r)
		verdict := "deny"
		if d.Allow {
			verdict = "allow"
		}
		out = append(out, Result{Name: c.Name, Verdict: verdict})
	}
	return out, nil
}

// policySet parses a vector file's policies as one set.
func policySet(policies []CallPolicy) (*policy.Set, error) {
	files := make([]policy.File, 0, len(policies))
	for _, p := range policies {
		files = append(files, policy.File{Name: p.Name, Source: []byte(p.Source)})
	}
	set, err := policy.Parse(files...)
	if err != nil {
		return nil, fmt.Errorf("vectors: policies: %w", err)
	}
	return set, nil
}

// request is the per-call request of the chain, held by a holder in groups,
// without its action and resource.
func (c CallChain) request(groups []string) policy.CallRequest {
	return policy.CallRequest{Holder: c.Holder, Groups: groups, Subject: c.Subject, SubjectIssuer: c.SubjectIssuer, Actors: c.Actors,
		Depth: c.Depth, Scopes: c.Scopes, Audiences: c.Audiences, Root: c.Root, Lineage: c.Lineage, Bound: c.Bound}
}
