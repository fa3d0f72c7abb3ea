package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
)

// Action is what a token request asks to do.
type Action string

// The actions of a token request, and the default action of a call.
const (
	// ActionMint: a root token (client_credentials, or an external subject token).
	ActionMint Action = "mint"
	// ActionDelegate: an exchange that hands the chain to another actor.
	ActionDelegate Action = "delegate"
	// ActionDownscope: an exchange that keeps the same holder.
	ActionDownscope Action = "downscope"
	// ActionCall: a resource server authorizing a call made with a chain.
	ActionCall Action = "call"
)

// Request is one token request as policy sees it: Principal (the authenticated
// client) asks to perform Action for Resource (the new token's holder).
type Request struct {
	Principal string
	Action    Action
	Resource  string
	// Groups of the principal and of the resource, from the client registry.
	PrincipalGroups []string
	ResourceGroups  []string

	// Subject and SubjectIssuer name on whose behalf the work is done (the
	// pair: a client, or an identity provider's user).
	Subject       string
	SubjectIssuer string
	Scopes        []string
	Audiences     []string
	// Depth of the new token (0 for a root).
	Depth int
	// Actors is the prior actor chain, newest first.
	Actors []string
	// Root is the task's root jti; empty when minting a root.
	Root string
	// TTL is the new token's lifetime after clamping.
	TTL time.Duration
	// Ephemeral: the new holder is an ephemeral agent (no registration; its
	// id is "<owner>/<name>"), so policies can restrict names with like.
	Ephemeral bool
	// Bound: the new token is bound to its holder's key (DPoP), so policies
	// can require sender-constrained delegation.
	Bound bool
	// AudienceExchange: a resource server exchanges a token sent to it (an
	// audience it serves) for its own token to a downstream API; the
	// principal is then also the resource (the new holder), and the action
	// delegate.
	AudienceExchange bool
	// Assertion, when a root is minted by the JWT bearer grant, is the
	// platform token or ID-JAG it came from (context.assertion), so a rule
	// can read the workload's namespace or repository.
	Assertion *Assertion
}

// Assertion is what policy sees of a verified assertion: who issued it,
// whom it names, and its whole payload as a record (by ParseClaims).
type Assertion struct {
	Issuer  string
	Subject string
	// Kind is "workload" or "id-jag".
	Kind   string
	Claims Arguments
}

// Entity names a Cedar entity, such as Tool::"search" or Table::"orders".
type Entity struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// CallRequest is one call to a resource server as policy sees it: the token's
// Holder asks to perform Action on Resource, with its chain in the context.
type CallRequest struct {
	Holder string
	// Groups of the holder, if the resource server knows them.
	Groups        []string
	Action        Action
	Resource      Entity
	Subject       string
	SubjectIssuer string
	Actors        []string
	Depth         int
	Scopes        []string
	Audiences     []string
	Root          string
	// Lineage is the ancestors' jtis, root first.
	Lineage []string
	// Bound: the token is bound to its holder's key (DPoP).
	Bound bool
}

// Decision is a policy outcome with the ids of the policies that determined
// it: the permitting ones on allow; the forbidding, or failing, ones on deny
// (none when no policy permits). Forbidden is set only when forbid policies
// determined a denial, as opposed to Cedar's default deny or a failing policy
// (which an operator's mistake, not an agent, is likely to cause).
type Decision struct {
	Allow     bool     `json:"allow"`
	Forbidden bool     `json:"forbidden,omitempty"`
	Policies  []string `json:"policies"`
	Reason    string   `json:"reason"`
}

// AllowAll permits every request; it is the engine when no policy directory is
// configured, leaving the attenuation rules as the only limit.
type AllowAll struct{}

// Decide always allows.
func (AllowAll) Decide(context.Context, Request) (Decision, error) {
	return Decision{Allow: true, Reason: "no policy configured"}, nil
}

// Set is an immutable, parsed set of Cedar policies with Mandate's ids.
type Set struct {
	ps        *cedar.PolicySet
	positions map[string]string // id → file:line
	patterns  []pattern         // the scope patterns its policies mention
}

// LoadDir parses every *.cedar file of dir (in name order) into one Set. A
// parse error names the file, line and column; two policies with the same
// @id are an error. A directory without policies is an error too: Cedar's
// default deny would refuse every request.
func LoadDir(dir string) (*Set, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.cedar"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("policy: no *.cedar files in %s", dir)
	}
	slices.Sort(paths)
	files := make([]File, 0, len(paths))
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		files = append(files, File{Name: p, Source: src})
	}
	return Parse(files...)
}

// File is a named Cedar document.
type File struct {
	Name   string
	Source []byte
}

// Parse builds a Set from Cedar documents (see LoadDir for the rules).
func Parse(files ...File) (*Set, error) {
	s := &Set{ps: cedar.NewPolicySet(), positions: map[string]string{}}
	var sources [][]byte
	for _, f := range files {
		list, err := cedar.NewPolicyListFromBytes(f.Name, f.Source)
		if err != nil {
			return nil, fmt.Errorf("policy: %s", strings.Replace(err.Error(), "<input>", f.Name, 1))
		}
		if len(list) == 0 && strings.HasSuffix(f.Name, ".cedar") {
			return nil, fmt.Errorf("policy: %s holds no policy (an emptied file would silently drop its rules; delete it instead)", f.Name)
		}
		sources = append(sources, f.Source)
		for _, p := range list {
			pos := fmt.Sprintf("%s:%d", f.Name, p.Position().Line)
			id := filepath.Base(f.Name) + fmt.Sprintf(":%d", p.Position().Line)
			if a, ok := p.Annotations()["id"]; ok {
				id = string(a)
			}
			if prev, dup := s.positions[id]; dup {
				return nil, fmt.Errorf("policy: id %q at %s is already used at %s", id, pos, prev)
			}
			s.positions[id] = pos
			s.ps.Add(cedar.PolicyID(id), p)
		}
	}
	if len(s.positions) == 0 {
		return nil, fmt.Errorf("policy: the policy files hold no policy")
	}
	s.patterns = literalPatterns(sources...)
	return s, nil
}

// IDs returns the ids of the set's policies, sorted.
func (s *Set) IDs() []string {
	ids := make([]string, 0, len(s.positions))
	for id := range s.positions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Position returns where a policy is defined ("file:line").
func (s *Set) Position(id string) string { return s.positions[id] }

// errNoSet is the decision of a nil *Set (a load error that was ignored).
var errNoSet = Decision{Policies: []string{}, Reason: "no policy set is loaded, so the request is denied"}

// Decide evaluates a token request. A nil *Set denies.
func (s *Set) Decide(_ context.Context, r Request) (Decision, error) {
	if s == nil {
		return errNoSet, nil
	}
	principal := agent(r.Principal)
	resource := agent(r.Resource)
	ents := cedar.EntityMap{
		principal: {UID: principal, Parents: groups(r.PrincipalGroups)},
	}
	if resource != principal {
		ents[resource] = cedar.Entity{UID: resource, Parents: groups(r.ResourceGroups)}
	}
	ctx := s.scopeContext(r.Scopes)
	ctx["subject"] = cedar.String(r.Subject)
	ctx["sub_iss"] = cedar.String(r.SubjectIssuer)
	ctx["audiences"] = stringSet(r.Audiences)
	ctx["depth"] = cedar.Long(r.Depth)
	ctx["actors"] = stringSet(r.Actors)
	ctx["root"] = cedar.String(r.Root)
	ctx["ttl_seconds"] = cedar.Long(r.TTL / time.Second)
	ctx["holder"] = cedar.String(r.Resource)
	ctx["ephemeral"] = cedar.Boolean(r.Ephemeral)
	ctx["bound"] = cedar.Boolean(r.Bound)
	ctx["audience_exchange"] = cedar.Boolean(r.AudienceExchange)
	if a := r.Assertion; a != nil {
		ctx["assertion"] = cedar.NewRecord(cedar.RecordMap{
			"iss": cedar.String(a.Issuer), "sub": cedar.String(a.Subject), "kind": cedar.String(a.Kind),
			"claims": a.Claims.Record(),
		})
	}
	return s.eval(ents, cedar.Request{Principal: principal, Action: action(r.Action), Resource: resource, Context: cedar.NewRecord(ctx)}), nil
}

// AuthorizeCall evaluates a call to a resource server. A nil *Set denies.
func (s *Set) AuthorizeCall(r CallRequest) Decision {
	return s.authorizeCall(r, nil)
}

// authorizeCall is AuthorizeCall with extra members of the context (an MCP
// request's server and arguments).
func (s *Set) authorizeCall(r CallRequest, extra map[cedar.String]cedar.Value) Decision {
	if s == nil {
		return errNoSet
	}
	principal := agent(r.Holder)
	resource := cedar.NewEntityUID(cedar.EntityType(r.Resource.Type), cedar.String(r.Resource.ID))
	ents := cedar.EntityMap{resource: {UID: resource}}
	ents[principal] = cedar.Entity{UID: principal, Parents: groups(r.Groups)} // the holder's groups win if resource names it
	ctx := s.scopeContext(r.Scopes)
	ctx["holder"] = cedar.String(r.Holder)
	ctx["subject"] = cedar.String(r.Subject)
	ctx["sub_iss"] = cedar.String(r.SubjectIssuer)
	ctx["audiences"] = stringSet(r.Audiences)
	ctx["depth"] = cedar.Long(r.Depth)
	ctx["actors"] = stringSet(r.Actors)
	ctx["root"] = cedar.String(r.Root)
	ctx["lineage"] = stringSet(r.Lineage)
	ctx["bound"] = cedar.Boolean(r.Bound)
	for k, v := range extra {
		ctx[k] = v
	}
	act := r.Action
	if act == "" {
		act = ActionCall
	}
	return s.eval(ents, cedar.Request{Principal: principal, Action: action(act), Resource: resource, Context: cedar.NewRecord(ctx)})
}

// NoPolicyPermits is the reason of a denial no policy determined: Cedar's
// default deny.
const NoPolicyPermits = "no policy permits this request"

// eval authorizes and explains. Any evaluation error denies, naming the
// failing policies, whatever the other policies say.
func (s *Set) eval(ents cedar.EntityMap, req cedar.Request) Decision {
	d, diag := s.ps.IsAuthorized(ents, req)
	if len(diag.Errors) > 0 {
		ids := make([]string, 0, len(diag.Errors))
		for _, e := range diag.Errors {
			ids = append(ids, string(e.PolicyID))
		}
		slices.Sort(ids) // cedar reports them in no fixed order
		msg := ""
		for _, e := range diag.Errors {
			if string(e.PolicyID) == ids[0] {
				msg = e.Message
				break
			}
		}
		return Decision{Policies: ids, Reason: fmt.Sprintf("policy %q failed to evaluate (%s), so the request is denied", ids[0], msg)}
	}
	ids := make([]string, 0, len(diag.Reasons))
	for _, r := range diag.Reasons {
		ids = append(ids, string(r.PolicyID))
	}
	slices.Sort(ids)
	switch {
	case d == cedar.Allow:
		return Decision{Allow: true, Policies: ids, Reason: "permitted by " + quoteAll(ids)}
	case len(ids) > 0:
		return Decision{Forbidden: true, Policies: ids, Reason: "denied by " + quoteAll(ids)}
	default:
		return Decision{Policies: []string{}, Reason: NoPolicyPermits}
	}
}

func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return "policy " + strings.Join(q, ", ")
}

func agent(id string) cedar.EntityUID { return cedar.NewEntityUID("Agent", cedar.String(id)) }

func action(a Action) cedar.EntityUID { return cedar.NewEntityUID("Action", cedar.String(a)) }

func groups(names []string) cedar.EntityUIDSet {
	uids := make([]cedar.EntityUID, len(names))
	for i, g := range names {
		uids[i] = cedar.NewEntityUID("Group", cedar.String(g))
	}
	return cedar.NewEntityUIDSet(uids...)
}

func stringSet(list []string) cedar.Set {
	vals := make([]cedar.Value, len(list))
	for i, s := range list {
		vals[i] = cedar.String(s)
	}
	return cedar.NewSet(vals...)
}

// scopeContext returns the scope attributes of a context: the scopes, and,
// since Cedar cannot match patterns inside a set, the patterns this set's
// policies mention that the scopes meet: scope_patterns (some scope can grant
// something the pattern matches) and scope_patterns_all (everything every
// scope grants matches the pattern).
func (s *Set) scopeContext(scopes []string) cedar.RecordMap {
	grants := make([]grant, len(scopes))
	for i, sc := range scopes {
		grants[i] = splitScope(sc)
	}
	var some, all []cedar.Value
	for _, p := range s.patterns {
		any, every := false, len(scopes) > 0
		for _, g := range grants {
			if !any && p.overlaps(g) {
				any = true
			}
			if every && !p.contains(g) {
				every = false
			}
		}
		if any {
			some = append(some, cedar.String(p.text))
		}
		if every {
			all = append(all, cedar.String(p.text))
		}
	}
	return cedar.RecordMap{
		"scopes":             stringSet(scopes),
		"scope_patterns":     cedar.NewSet(some...),
		"scope_patterns_all": cedar.NewSet(all...),
	}
}
