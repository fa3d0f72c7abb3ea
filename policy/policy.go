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

	Subject   string
	Scopes    []string
	Audiences []string
	// Depth of the new token (0 for a root).
	Depth int
	// Actors is the prior actor chain, newest first.
	Actors []string
	// Root is the task's root jti; empty when minting a root.
	Root string
	// TTL is the new token's lifetime after clamping.
	TTL time.Duration
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
	Groups    []string
	Action    Action
	Resource  Entity
	Subject   string
	Actors    []string
	Depth     int
	Scopes    []string
	Audiences []string
	Root      string
}

// Decision is a policy outcome with the ids of the policies that determined
// it: the permitting ones on allow; the forbidding, or failing, ones on deny
// (none when no policy permits).
type Decision struct {
	Allow    bool     `json:"allow"`
	Policies []string `json:"policies"`
	Reason   string   `json:"reason"`
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
	for _, f := range files {
		list, err := cedar.NewPolicyListFromBytes(f.Name, f.Source)
		if err != nil {
			return nil, fmt.Errorf("policy: %s", strings.Replace(err.Error(), "<input>", f.Name, 1))
		}
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

// Decide evaluates a token request.
func (s *Set) Decide(_ context.Context, r Request) (Decision, error) {
	principal := agent(r.Principal)
	resource := agent(r.Resource)
	ents := cedar.EntityMap{
		principal: {UID: principal, Parents: groups(r.PrincipalGroups)},
	}
	if resource != principal {
		ents[resource] = cedar.Entity{UID: resource, Parents: groups(r.ResourceGroups)}
	}
	ctx := scopeContext(r.Scopes)
	ctx["subject"] = cedar.String(r.Subject)
	ctx["audiences"] = stringSet(r.Audiences)
	ctx["depth"] = cedar.Long(r.Depth)
	ctx["actors"] = stringSet(r.Actors)
	ctx["root"] = cedar.String(r.Root)
	ctx["ttl_seconds"] = cedar.Long(r.TTL / time.Second)
	return s.eval(ents, cedar.Request{Principal: principal, Action: action(r.Action), Resource: resource, Context: cedar.NewRecord(ctx)}), nil
}

// AuthorizeCall evaluates a call to a resource server.
func (s *Set) AuthorizeCall(r CallRequest) Decision {
	principal := agent(r.Holder)
	resource := cedar.NewEntityUID(cedar.EntityType(r.Resource.Type), cedar.String(r.Resource.ID))
	ents := cedar.EntityMap{
		principal: {UID: principal, Parents: groups(r.Groups)},
		resource:  {UID: resource},
	}
	ctx := scopeContext(r.Scopes)
	ctx["holder"] = cedar.String(r.Holder)
	ctx["subject"] = cedar.String(r.Subject)
	ctx["audiences"] = stringSet(r.Audiences)
	ctx["depth"] = cedar.Long(r.Depth)
	ctx["actors"] = stringSet(r.Actors)
	ctx["root"] = cedar.String(r.Root)
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
		return Decision{Policies: ids, Reason: fmt.Sprintf("policy %q failed to evaluate (%s), so the request is denied", ids[0], diag.Errors[0].Message)}
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
		return Decision{Policies: ids, Reason: "denied by " + quoteAll(ids)}
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

// scopeContext returns the scope attributes of a context: scopes, and since
// Cedar cannot match patterns inside a set, scope_patterns (every pattern
// some scope matches) and scope_patterns_all (every pattern all scopes match).
func scopeContext(scopes []string) cedar.RecordMap {
	var union, all []string
	for i, sc := range scopes {
		pats := Patterns(sc)
		for _, p := range pats {
			if !slices.Contains(union, p) {
				union = append(union, p)
			}
		}
		if i == 0 {
			all = pats
			continue
		}
		all = slices.DeleteFunc(all, func(p string) bool { return !slices.Contains(pats, p) })
	}
	return cedar.RecordMap{
		"scopes":             stringSet(scopes),
		"scope_patterns":     stringSet(union),
		"scope_patterns_all": stringSet(all),
	}
}

// maxPatternSegments bounds the segments expanded into patterns (2^n of them);
// a longer scope contributes only itself, so a crafted scope cannot blow up.
const maxPatternSegments = 6

// Patterns returns scope with every combination of its ':'-separated segments
// replaced by '*' ("db:write:orders" gives db:write:orders, *:write:orders,
// db:*:orders, db:write:*, *:*:orders, *:write:*, db:*:*, *:*:*), the scope
// itself first.
func Patterns(scope string) []string {
	segs := strings.Split(scope, ":")
	if len(segs) > maxPatternSegments {
		return []string{scope}
	}
	n := 1 << len(segs)
	out := make([]string, 0, n)
	buf := make([]string, len(segs))
	for mask := 0; mask < n; mask++ {
		for i, s := range segs {
			if mask&(1<<i) != 0 {
				buf[i] = "*"
			} else {
				buf[i] = s
			}
		}
		p := strings.Join(buf, ":")
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
