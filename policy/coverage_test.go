package policy_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/policy"
)

// TestPolicyPatternsAgreeWithCoverage checks policy's scope_patterns and
// scope_patterns_all against chain.Covers by brute force: over every
// concrete scope of up to four segments from a small alphabet, a pattern is
// in scope_patterns iff some scope the token's scope covers matches it, and in
// scope_patterns_all iff all of them do. A disagreement would let a scope
// spelled differently (db:*, *) slip past a policy.
func TestPolicyPatternsAgreeWithCoverage(t *testing.T) {
	alphabet := []string{"db", "read", "write", "orders"}
	var universe []string
	var grow func(prefix []string)
	grow = func(prefix []string) {
		if len(prefix) > 0 {
			universe = append(universe, strings.Join(prefix, ":"))
		}
		if len(prefix) == 4 {
			return
		}
		for _, a := range alphabet {
			grow(append(prefix, a))
		}
	}
	grow(nil)
	// A literal scope grants itself, even with a '*' segment in the middle.
	universe = append(universe, "db:*:orders")
	patterns := []string{"*:write:*", "db:read:*", "db:*", "*", "db:read:orders", "*:*", "db:*:orders", "*:read", "write:*:*"}
	scopes := []string{"*", "db:*", "db:write:*", "db:read:*", "db:read:orders", "db:write:orders:read", "read:*", "orders", "db:*:orders"}

	toRegexp := func(p string) *regexp.Regexp {
		segs := strings.Split(p, ":")
		for i, s := range segs {
			switch {
			case s == "*" && i == len(segs)-1:
				segs[i] = `[^:]+(:[^:]+)*`
			case s == "*":
				segs[i] = `[^:]+`
			default:
				segs[i] = regexp.QuoteMeta(s)
			}
		}
		return regexp.MustCompile("^" + strings.Join(segs, ":") + "$")
	}
	for _, p := range patterns {
		src := `@id("some") permit (principal, action == Action::"delegate", resource) when { context.scope_patterns.contains("` + p + `") };
@id("all") permit (principal, action == Action::"downscope", resource) when { context.scope_patterns_all.contains("` + p + `") };`
		set, err := policy.Parse(policy.File{Name: "p.cedar", Source: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		re := toRegexp(p)
		for _, sc := range scopes {
			some, all, granted := false, true, 0
			for _, c := range universe {
				if chain.Covers(sc, c) {
					granted++
					m := re.MatchString(c)
					some = some || m
					all = all && m
				}
			}
			all = all && granted > 0
			for action, want := range map[policy.Action]bool{policy.ActionDelegate: some, policy.ActionDownscope: all} {
				d, _ := set.Decide(context.Background(), policy.Request{Principal: "a", Resource: "a", Action: action, Scopes: []string{sc}})
				if d.Allow != want {
					t.Errorf("pattern %q, scope %q, %s: policy says %v, coverage says %v", p, sc, action, d.Allow, want)
				}
			}
		}
	}
}
