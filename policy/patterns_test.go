package policy

import "testing"

func TestPatternSemantics(t *testing.T) {
	pat := func(s string) pattern { return literalPatterns([]byte(`"` + s + `"`))[0] }
	tests := []struct {
		pattern, scope  string
		overlaps, holds bool
	}{
		{"*:write:*", "db:write:orders", true, true},
		{"*:write:*", "db:write:orders:archive", true, true},
		{"*:write:*", "db:write:*", true, true},
		{"*:write:*", "db:*", true, false},
		{"*:write:*", "*", true, false},
		{"*:write:*", "db:read:*", false, false},
		{"*:write:*", "db:write", false, false},
		{"db:read:*", "db:read:*", true, true},
		{"db:read:*", "db:*", true, false},
		{"db:read:*", "db:read:orders", true, true},
		{"db:read:*", "db:readers:x", false, false},
		{"db:read:orders", "db:read:*", true, false},
		{"db:read:orders", "db:read:orders", true, true},
		{"db:read:orders", "db:read:orders:archive", false, false},
		{"*", "anything:at:all", true, true},
		{"*", "*", true, true},
		{"db:*:orders", "db:write:orders", true, true},
		{"db:*:orders", "db:*", true, false},
		{"tools:*", "tools:search", true, true},
		{"tools:*", "tools", false, false},
	}
	for _, tt := range tests {
		p, g := pat(tt.pattern), splitScope(tt.scope)
		if got := p.overlaps(g); got != tt.overlaps {
			t.Errorf("%q overlaps %q = %v, want %v", tt.pattern, tt.scope, got, tt.overlaps)
		}
		if got := p.contains(g); got != tt.holds {
			t.Errorf("%q contains %q = %v, want %v", tt.pattern, tt.scope, got, tt.holds)
		}
	}
}

func TestLiteralPatterns(t *testing.T) {
	got := literalPatterns([]byte(`permit (principal in Group::"g", action, resource) when { context.scope_patterns.contains("*:write:*") && context.subject == "has space" && context.root == "" };`))
	var texts []string
	for _, p := range got {
		texts = append(texts, p.text)
	}
	if len(texts) != 2 || texts[0] != "g" || texts[1] != "*:write:*" {
		t.Errorf("patterns = %v", texts)
	}
}
