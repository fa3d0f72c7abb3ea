package chain_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestBounds: a child's grant stays within its parent's and its holder's
// ceiling, and every way to widen is refused naming the bound crossed.
func TestBounds(t *testing.T) {
	parent := &chain.Grant{Scopes: []string{"db:read:*", "tools:search"}, Audiences: []string{"https://db.example", "https://tools.example"}}
	ceiling := chain.Grant{Scopes: []string{"db:*"}, Audiences: []string{"https://db.example"}}
	child := chain.Bounds{Parent: parent, Ceiling: ceiling}
	root := chain.Bounds{Ceiling: ceiling}

	scopeTests := []struct {
		name      string
		b         chain.Bounds
		requested []string
		want      []string
		err       *chain.WideningError
	}{
		{"default: parent narrowed to the ceiling", child, nil, []string{"db:read:*"}, nil},
		{"default of a root: the ceiling", root, nil, []string{"db:*"}, nil},
		{"narrower request", child, []string{"db:read:orders"}, []string{"db:read:orders"}, nil},
		{"beyond the parent", child, []string{"db:write:orders"}, nil, &chain.WideningError{Claim: "scope", Value: "db:write:orders", ByParent: true}},
		{"beyond the ceiling", child, []string{"tools:search"}, nil, &chain.WideningError{Claim: "scope", Value: "tools:search"}},
		{"a wildcard wider than the parent's", child, []string{"db:*"}, nil, &chain.WideningError{Claim: "scope", Value: "db:*", ByParent: true}},
		{"nothing in common", chain.Bounds{Parent: &chain.Grant{Scopes: []string{"mail:send"}}, Ceiling: ceiling}, nil, nil, &chain.WideningError{Claim: "scope"}},
		{"identity-only parent", chain.Bounds{Parent: &chain.Grant{}, Ceiling: ceiling}, nil, nil, &chain.WideningError{Claim: "scope"}},
	}
	for _, tt := range scopeTests {
		got, err := tt.b.Scopes(tt.requested)
		checkNarrowing(t, tt.name, got, err, tt.want, tt.err)
	}
	audTests := []struct {
		name      string
		b         chain.Bounds
		requested []string
		want      []string
		err       *chain.WideningError
	}{
		{"default", child, nil, []string{"https://db.example"}, nil},
		{"repeated values count once", child, []string{"https://db.example", "https://db.example"}, []string{"https://db.example"}, nil},
		{"beyond the parent", chain.Bounds{Parent: &chain.Grant{Audiences: []string{"https://x"}}, Ceiling: ceiling}, []string{"https://db.example"}, nil,
			&chain.WideningError{Claim: "aud", Value: "https://db.example", ByParent: true}},
		{"beyond the ceiling", child, []string{"https://tools.example"}, nil, &chain.WideningError{Claim: "aud", Value: "https://tools.example"}},
		{"matched exactly, not by prefix", child, []string{"https://db.example/"}, nil, &chain.WideningError{Claim: "aud", Value: "https://db.example/", ByParent: true}},
	}
	for _, tt := range audTests {
		got, err := tt.b.Audiences(tt.requested)
		checkNarrowing(t, tt.name, got, err, tt.want, tt.err)
	}
	many := make([]string, chain.MaxScopes+1)
	if _, err := child.Audiences(many); !errors.Is(err, chain.ErrTooManyAudiences) {
		t.Errorf("%d audiences: %v", len(many), err)
	}
}

func checkNarrowing(t *testing.T, name string, got []string, err error, want []string, wantErr *chain.WideningError) {
	t.Helper()
	if wantErr == nil {
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %v, want %v", name, got, err, want)
		}
		return
	}
	var w *chain.WideningError
	if !errors.As(err, &w) || *w != *wantErr || !errors.Is(err, chain.ErrWidening) {
		t.Errorf("%s: %v, want %+v", name, err, wantErr)
	}
}

// TestExpiryNeverOutlivesTheParent: a child lives its own TTL, cut at its
// parent's exp.
func TestExpiryNeverOutlivesTheParent(t *testing.T) {
	if got := chain.Expiry(now, 5*time.Minute, at(time.Hour)); got != at(5*time.Minute) {
		t.Errorf("TTL within the parent: %v", got.Time())
	}
	if got := chain.Expiry(now, 5*time.Minute, at(time.Minute)); got != at(time.Minute) {
		t.Errorf("cut at the parent: %v", got.Time())
	}
	if got := chain.Expiry(now, time.Hour, 0); got != 0 {
		t.Errorf("an absent limit must cut everything, not lengthen a life: %v", got.Time())
	}
}

// TestDerive: the child keeps sub and issuer, grows the act chain only when
// the holder changes, and grows the lineage by the parent; it passes the
// structure check at the next depth.
func TestDerive(t *testing.T) {
	root := &jwt.Claims{Issuer: "https://m.example", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", ID: "r"}
	child := chain.Derive(root, "res")
	child.ID = "c"
	if child.Subject != "o" || child.ClientID != "res" || !reflect.DeepEqual(child.Act.Path(), []string{"res"}) || !reflect.DeepEqual(child.Lineage, []string{"r"}) {
		t.Errorf("child = %+v", child)
	}
	same := chain.Derive(child, "res")
	same.ID = "d"
	if !reflect.DeepEqual(same.Act.Path(), []string{"res"}) || !reflect.DeepEqual(same.Lineage, []string{"r", "c"}) {
		t.Errorf("down-scoped copy = %+v", same)
	}
	grand := chain.Derive(same, "db")
	grand.ID = "g"
	if !reflect.DeepEqual(grand.Act.Path(), []string{"db", "res"}) || len(same.Lineage) != 2 {
		t.Errorf("grandchild = %+v (and the parent's lineage must not change)", grand)
	}
	for _, c := range []*jwt.Claims{child, same, grand} {
		if err := chain.CheckStructure(c, chain.MaxDepth); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
	}
}
