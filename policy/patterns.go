package policy

import (
	"regexp"
	"strings"

	"github.com/mandate-auth/mandate/chain"
)

// Scope patterns are how a policy talks about scopes: ':'-separated segments
// where "*" matches any one segment, and a trailing "*" matches one or more
// ("*:write:*" matches "db:write:orders" and "db:write:orders:archive").
//
// A granted scope is a literal ("db:write:orders"), or a wildcard that grants
// every scope under a prefix ("db:write:*", "db:*", or "*"), exactly as
// chain.Covers reads it. The context's scope_patterns and scope_patterns_all
// are computed against what scopes grant, not against how they are spelled,
// so "db:*" or "*" cannot slip past a policy about "*:write:*".

// pattern is a scope pattern from a policy's string literals, split once.
type pattern struct {
	text string
	segs []string
}

// grant is a scope as the set of scopes it grants: its literal segments, and
// whether it ends in a wildcard covering one or more further segments.
type grant struct {
	segs []string
	rest bool
}

// splitScope reads what a scope grants with the chain's own grammar
// (chain.Wildcard), so a policy and the attenuation rules can never disagree
// on what "db:*" or "*" covers.
func splitScope(scope string) grant {
	prefix, wild := chain.Wildcard(scope)
	switch {
	case wild && prefix == "":
		return grant{rest: true}
	case wild:
		return grant{segs: strings.Split(strings.TrimSuffix(prefix, ":"), ":"), rest: true}
	}
	return grant{segs: strings.Split(scope, ":")}
}

func segMatch(p, s string) bool { return p == "*" || p == s }

// matches reports whether the pattern matches the literal scope with segments c.
func (p pattern) matches(c []string) bool {
	m := len(p.segs)
	if m > len(c) || (m < len(c) && p.segs[m-1] != "*") {
		return false
	}
	for i := 0; i < m-1; i++ {
		if !segMatch(p.segs[i], c[i]) {
			return false
		}
	}
	return segMatch(p.segs[m-1], c[m-1])
}

// overlaps reports whether some scope granted by g matches the pattern.
func (p pattern) overlaps(g grant) bool {
	if !g.rest {
		return p.matches(g.segs)
	}
	k, m := len(g.segs), len(p.segs)
	for i := 0; i < min(k, m); i++ {
		if !segMatch(p.segs[i], g.segs[i]) {
			return false
		}
	}
	// Past the prefix, the granted scopes take any segments, as many as the
	// pattern needs; a shorter pattern needs its trailing "*" to reach them.
	return m > k || p.segs[m-1] == "*"
}

// contains reports whether every scope granted by g matches the pattern.
func (p pattern) contains(g grant) bool {
	if !g.rest {
		return p.matches(g.segs)
	}
	k, m := len(g.segs), len(p.segs)
	if m > k+1 || p.segs[m-1] != "*" {
		return false
	}
	for i := 0; i < m-1; i++ {
		if !segMatch(p.segs[i], g.segs[i]) {
			return false
		}
	}
	return true
}

// stringLiteral finds Cedar string literals (escaped quotes included).
var stringLiteral = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// maxPatterns bounds the patterns a set evaluates per request.
const maxPatterns = 256

// literalPatterns collects the string literals of Cedar sources that can be
// scope patterns (printable, no spaces or quotes): the only patterns a policy
// can test scope_patterns against. Identifiers such as entity ids come along;
// they are harmless (a pattern nobody tests is never looked at).
func literalPatterns(sources ...[]byte) []pattern {
	seen := map[string]bool{}
	var out []pattern
	for _, src := range sources {
		for _, m := range stringLiteral.FindAllSubmatch(src, -1) {
			t := string(m[1])
			if t == "" || seen[t] || strings.ContainsAny(t, " \\\t\"") || len(out) == maxPatterns {
				continue
			}
			seen[t] = true
			out = append(out, pattern{text: t, segs: strings.Split(t, ":")})
		}
	}
	return out
}
