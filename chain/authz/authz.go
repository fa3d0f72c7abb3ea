// Package authz decides, per call and locally, whether a verified chain may
// perform an action on a resource, with Mandate's Cedar policies (package
// policy): principal Agent::"<holder>" with its groups, the action and
// resource the resource server names, and the chain in the context. It is a
// package of its own so that a resource server that wants no Cedar pulls none
// in: package verifier never imports it.
//
// Invariants: a policy that fails to evaluate denies (package policy fails
// closed); a denial is answered 403 insufficient_scope naming the policy, and
// never reaches the handler.
package authz

import (
	"errors"
	"net/http"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/policy"
)

// Policy decides whether a verified chain may perform an action on a
// resource; *policy.Set and *policy.Engine (which reloads) satisfy it.
type Policy interface {
	AuthorizeCall(policy.CallRequest) policy.Decision
}

var (
	_ Policy = (*policy.Set)(nil)
	_ Policy = (*policy.Engine)(nil)
)

// Authorizer evaluates per-call policy for the chains one verifier checks.
type Authorizer struct {
	v      *verifier.Verifier
	policy Policy
	groups func(holder string) []string
}

// ErrNoPolicy refuses an Authorizer without a policy: a resource server
// that means to decide calls must say how, at start, not at its first call.
var ErrNoPolicy = errors.New("authz: no call policy given")

// New returns an Authorizer over policy p. groups, when not nil, names a
// holder's groups, so call policies can say principal in Group::"..."
// (Mandate's tokens do not carry groups). v writes the refusals, with its
// challenges.
func New(v *verifier.Verifier, p Policy, groups func(holder string) []string) (*Authorizer, error) {
	if p == nil || v == nil {
		return nil, ErrNoPolicy
	}
	return &Authorizer{v: v, policy: p, groups: groups}, nil
}

// Authorize asks the policy, locally, whether the chain may perform action
// on resource (Action::"call" on Tool::"search", say). The principal is
// Agent::"<holder>", with its groups; the context carries the holder, the
// subject and its issuer (sub_iss), actors, depth, scopes (with their
// patterns), audiences, root, lineage and whether the token is bound.
func (a *Authorizer) Authorize(c *chain.Chain, action policy.Action, resource policy.Entity) policy.Decision {
	var groups []string
	if a.groups != nil {
		groups = a.groups(c.Holder)
	}
	r := CallRequest(c, groups)
	r.Action, r.Resource = action, resource
	return a.policy.AuthorizeCall(r)
}

// CallRequest is the per-call request of a verified chain, held by a holder
// in groups, without its action and resource: what every per-call decision
// (a call here, an MCP request in chain/mcpguard) puts in the context.
func CallRequest(c *chain.Chain, groups []string) policy.CallRequest {
	return policy.CallRequest{
		Holder: c.Holder, Groups: groups, Subject: c.Subject, SubjectIssuer: c.SubjectIssuer,
		Actors: c.Actors, Depth: c.Depth, Scopes: c.Scopes, Audiences: c.Audiences, Root: c.Root, Lineage: c.Lineage, Bound: c.JKT != "",
	}
}

// Require returns net/http middleware that lets a request through only when
// the policy permits its verified chain to perform action on resource;
// otherwise 403 insufficient_scope naming the determining policy. It must
// run after the verifier's Middleware.
func (a *Authorizer) Require(action policy.Action, resource policy.Entity) func(http.Handler) http.Handler {
	return a.v.Require(a.Check(action, resource))
}

// Check is the verifier.Check behind Require, for echo (echomw.Require) and
// for handlers that pick the resource per request.
func (a *Authorizer) Check(action policy.Action, resource policy.Entity) verifier.Check {
	return func(w http.ResponseWriter, c *chain.Chain) bool {
		if d := a.Authorize(c, action, resource); !d.Allow {
			a.Reject(w, d)
			return false
		}
		return true
	}
}

// Reject writes the 403 answer for a call the policy denied (RFC 6750
// insufficient_scope: the token lacks the privilege), naming the policy.
func (a *Authorizer) Reject(w http.ResponseWriter, d policy.Decision) {
	a.v.RejectInsufficient(w, d.Reason, "", map[string]any{"error": "insufficient_scope", "error_description": d.Reason, "policies": d.Policies})
}
