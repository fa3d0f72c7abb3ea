// Package workload maps a platform's workload token — a Kubernetes projected
// service-account token, a SPIFFE JWT-SVID, a CI job's OIDC token — to the
// Mandate identity it starts a chain for (the RFC 7523 JWT bearer grant,
// ../../docs/design.md), by an issuer's rules: the first rule whose match
// globs all hold names either a registered client or a generated agent
// (a template filled from the token's claims), with that rule's ceiling of
// scopes, audiences and groups.
//
// Invariants: a claim is read by its dotted path with the longest key that
// matches at each step ("kubernetes.io" is one key); a glob's * never
// crosses ':' or '/'; every value substituted into a name is 1–63 of
// [A-Za-z0-9._-] and not dots only, so a claim cannot smuggle a separator,
// a namespace or a path into an identity. Nothing here does I/O.
package workload

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrNoRule reports a token that matches none of its issuer's rules.
var ErrNoRule = errors.New("the assertion matches no rule of its issuer")

// ErrBadValue reports a claim that cannot become part of a name.
var ErrBadValue = errors.New("a claim cannot become part of an identity")

// Rule is one mapping of an issuer: when every Match glob holds, the token
// is Client (a registered client) or Agent (a name template such as
// "k8s/{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}"),
// with the ceiling Scopes, Audiences and Groups.
type Rule struct {
	Match     map[string]string
	Client    string
	Agent     string
	Scopes    []string
	Audiences []string
	Groups    []string
}

// Identity is what a rule maps a token to.
type Identity struct {
	// Client is set when the rule names a registered client; Agent (the
	// generated name) otherwise.
	Client string
	Agent  string
	// Rule is the rule's index, for the audit trail.
	Rule      int
	Scopes    []string
	Audiences []string
	Groups    []string
}

// Name is the identity's name: the client id or the generated agent name.
func (id Identity) Name() string {
	if id.Client != "" {
		return id.Client
	}
	return id.Agent
}

// Check refuses a rule that could never work: neither or both of Client and
// Agent, a template naming no claim or with an unclosed brace, an empty
// match path or glob.
func (r Rule) Check() error {
	if (r.Client == "") == (r.Agent == "") {
		return errors.New("a rule names exactly one of client and agent")
	}
	for path, glob := range r.Match {
		if path == "" || glob == "" {
			return fmt.Errorf("match %q: %q: a claim path and a glob are both required", path, glob)
		}
	}
	if r.Agent != "" {
		parts, err := parseTemplate(r.Agent)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if !p.claim {
				continue
			}
			if path, n, isCapture := capture(p.text); isCapture {
				glob, ok := r.Match[path]
				if !ok || n < 1 || n > wholeStars(glob) {
					return fmt.Errorf("agent template {%s}: the match glob of %s has no %d-th segment that is * alone", p.text, path, n)
				}
			}
		}
	}
	return nil
}

// capture reads a template reference "path#N": the part of claim path that
// the N-th segment of its match glob consisting of * alone matched.
func capture(ref string) (path string, n int, ok bool) {
	path, num, ok := strings.Cut(ref, "#")
	if !ok {
		return ref, 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || num != strconv.Itoa(n) {
		return path, -1, true
	}
	return path, n, true
}

// wholeStars counts a glob's segments that are * alone.
func wholeStars(glob string) int {
	n := 0
	for _, sg := range segments(glob) {
		if glob[sg.from:sg.to] == "*" {
			n++
		}
	}
	return n
}

// captured is the segment of s that the n-th whole-* segment of glob
// matched (s matches glob, so their segments pair off).
func captured(glob, s string, n int) (string, bool) {
	gs, ss := segments(glob), segments(s)
	if len(gs) != len(ss) {
		return "", false
	}
	for i, sg := range gs {
		if glob[sg.from:sg.to] == "*" {
			if n--; n == 0 {
				return s[ss[i].from:ss[i].to], true
			}
		}
	}
	return "", false
}

// Map returns the identity of the first rule of rules that claims match.
func Map(rules []Rule, claims map[string]any) (Identity, error) {
	for i, r := range rules {
		if !r.matches(claims) {
			continue
		}
		id := Identity{Client: r.Client, Rule: i, Scopes: r.Scopes, Audiences: r.Audiences, Groups: r.Groups}
		if r.Agent != "" {
			name, err := fill(r.Agent, claims, r.Match)
			if err != nil {
				return Identity{}, err
			}
			id.Agent = name
		}
		return id, nil
	}
	return Identity{}, ErrNoRule
}

func (r Rule) matches(claims map[string]any) bool {
	paths := make([]string, 0, len(r.Match))
	for p := range r.Match {
		paths = append(paths, p)
	}
	sort.Strings(paths) // deterministic, though every glob must hold
	for _, p := range paths {
		v, ok := Claim(claims, p)
		s, isString := v.(string)
		if !ok || !isString || !Glob(r.Match[p], s) {
			return false
		}
	}
	return true
}

// Claim reads a claim by its dotted path, taking at each step the longest
// key of the object that the path starts with ("kubernetes.io.namespace" is
// claims["kubernetes.io"]["namespace"]).
func Claim(claims map[string]any, path string) (any, bool) {
	var cur any = claims
	for path != "" {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		best := ""
		for k := range obj {
			if (path == k || strings.HasPrefix(path, k+".")) && len(k) > len(best) {
				best = k
			}
		}
		if best == "" {
			return nil, false
		}
		cur = obj[best]
		path = strings.TrimPrefix(strings.TrimPrefix(path, best), ".")
	}
	return cur, true
}

// Glob reports whether s matches pattern, where * matches any run of
// characters within one segment (never ':' or '/') and everything else
// matches itself. Since no * crosses a separator, the separators of s and
// pattern must pair off in order, and each segment is matched alone, in
// time linear in their lengths' product (never exponential in the stars).
func Glob(pattern, s string) bool {
	ps, ss := segments(pattern), segments(s)
	if len(ps) != len(ss) {
		return false
	}
	for i := range ps {
		if (i > 0 && pattern[ps[i].sep] != s[ss[i].sep]) || !globSegment(pattern[ps[i].from:ps[i].to], s[ss[i].from:ss[i].to]) {
			return false
		}
	}
	return true
}

// segment is a run between separators; sep is the index of the separator
// before it (unused for the first).
type segment struct{ sep, from, to int }

func segments(s string) []segment {
	out := []segment{{from: 0}}
	for i := 0; i < len(s); i++ {
		if s[i] == ':' || s[i] == '/' {
			out[len(out)-1].to = i
			out = append(out, segment{sep: i, from: i + 1})
		}
	}
	out[len(out)-1].to = len(s)
	return out
}

// globSegment is the classic wildcard match with one backtrack point.
func globSegment(p, s string) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// part is a piece of a name template: literal text, or a claim path.
type part struct {
	text  string
	claim bool
}

func parseTemplate(t string) ([]part, error) {
	var parts []part
	for t != "" {
		open := strings.IndexByte(t, '{')
		if open < 0 {
			if strings.IndexByte(t, '}') >= 0 {
				return nil, fmt.Errorf("agent template: an unopened }")
			}
			parts = append(parts, part{text: t})
			break
		}
		if strings.IndexByte(t[:open], '}') >= 0 {
			return nil, fmt.Errorf("agent template: an unopened }")
		}
		end := strings.IndexByte(t[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("agent template %q: an unclosed {", t)
		}
		path := t[open+1 : open+end]
		if path == "" || strings.ContainsAny(path, "{") {
			return nil, fmt.Errorf("agent template: an empty or nested {}")
		}
		if open > 0 {
			parts = append(parts, part{text: t[:open]})
		}
		parts = append(parts, part{text: path, claim: true})
		t = t[open+end+1:]
	}
	for _, p := range parts {
		if p.claim {
			return parts, nil
		}
	}
	return nil, errors.New("agent template names no claim: every workload would get one name")
}

// Fill makes a name from a template and the token's claims; every
// substituted value must be a string of 1–63 of [A-Za-z0-9._-], not dots
// only (ErrBadValue otherwise).
func Fill(template string, claims map[string]any) (string, error) {
	return fill(template, claims, nil)
}

// fill is Fill with a rule's match globs, which "{path#N}" references read
// (the segment of claim path that the glob's N-th lone * matched: a SPIFFE
// ID's last path segment, say).
func fill(template string, claims map[string]any, match map[string]string) (string, error) {
	parts, err := parseTemplate(template)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range parts {
		if !p.claim {
			b.WriteString(p.text)
			continue
		}
		path, n, isCapture := capture(p.text)
		v, ok := Claim(claims, path)
		s, isString := v.(string)
		if !ok || !isString {
			return "", fmt.Errorf("%w: claim %s is missing or not a string", ErrBadValue, path)
		}
		if isCapture {
			glob, matched := match[path]
			if !matched || !Glob(glob, s) {
				return "", fmt.Errorf("%w: {%s}: claim %s does not match its rule's glob", ErrBadValue, p.text, path)
			}
			if s, ok = captured(glob, s, n); !ok {
				return "", fmt.Errorf("%w: {%s}: the glob of %s has no such segment", ErrBadValue, p.text, path)
			}
		}
		if !nameValue(s) {
			return "", fmt.Errorf("%w: claim %s must be 1-63 of A-Z a-z 0-9 . _ - and not dots only", ErrBadValue, p.text)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func nameValue(s string) bool {
	if len(s) == 0 || len(s) > 63 || strings.Trim(s, ".") == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
