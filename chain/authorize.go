package chain

import (
	"errors"
	"net/http"

	"github.com/mandate-auth/mandate/policy"
)

// CallAuthorizer decides whether a verified chain may perform an action on a
// resource; *policy.Set and *policy.Engine (which reloads) satisfy it.
type CallAuthorizer interface {
	AuthorizeCall(policy.CallRequest) policy.Decision
}

// ErrNoPolicy reports an Authorize call on a Verifier configured without a policy.
var ErrNoPolicy = errors.New("chain: the verifier has no call policy (VerifierConfig.Policy)")

// Authorize asks the configured Cedar policy, locally, whether the chain may
// perform action on resource (Action::"call" on Tool::"search", say). The
// principal is Agent::"<holder>", with the groups VerifierConfig.Groups names;
// the context carries the holder, subject, actors, depth, scopes (with their
// patterns), audiences and root.
func (v *Verifier) Authorize(c *Chain, action policy.Action, resource policy.Entity) (policy.Decision, error) {
	if v.cfg.Policy == nil {
		return policy.Decision{}, ErrNoPolicy
	}
	var groups []string
	if v.cfg.Groups != nil {
		groups = v.cfg.Groups(c.Holder)
	}
	return v.cfg.Policy.AuthorizeCall(policy.CallRequest{
		Holder: c.Holder, Groups: groups, Action: action, Resource: resource, Subject: c.Subject,
		Actors: c.Actors, Depth: c.Depth, Scopes: c.Scopes, Audiences: c.Audiences, Root: c.Root,
	}), nil
}

// RequirePermission returns middleware that lets a request through only when
// the configured policy permits its verified chain to perform action on
// resource; otherwise 403 insufficient_scope naming the determining policy.
// It must run after Middleware.
func (v *Verifier) RequirePermission(action policy.Action, resource policy.Entity) func(http.Handler) http.Handler {
	return v.Require(v.MayCall(action, resource))
}

// MayCall is the Check behind RequirePermission: the call policy must permit
// the chain to perform action on resource. Handlers that pick the resource
// per request can run it directly.
func (v *Verifier) MayCall(action policy.Action, resource policy.Entity) Check {
	return func(w http.ResponseWriter, c *Chain) bool {
		d, err := v.Authorize(c, action, resource)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": err.Error()})
			return false
		}
		if !d.Allow {
			v.RejectPolicy(w, d)
			return false
		}
		return true
	}
}

// RejectPolicy writes the 403 answer for a call the policy denied (RFC 6750
// insufficient_scope: the token lacks the privilege), naming the policy.
func (v *Verifier) RejectPolicy(w http.ResponseWriter, d policy.Decision) {
	w.Header().Set("WWW-Authenticate", v.challenge("insufficient_scope", d.Reason, ""))
	writeJSON(w, http.StatusForbidden, map[string]any{"error": "insufficient_scope", "error_description": d.Reason, "policies": d.Policies})
}
