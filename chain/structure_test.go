package chain

import (
	"errors"
	"testing"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

func TestCheckStructure(t *testing.T) {
	act := func(subs ...string) *jwt.Actor {
		var a *jwt.Actor
		for i := len(subs) - 1; i >= 0; i-- {
			a = &jwt.Actor{Subject: subs[i], Act: a}
		}
		return a
	}
	tests := []struct {
		name string
		c    jwt.Claims
		ok   bool
	}{
		{"client_credentials root", jwt.Claims{ID: "r", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o"}, true},
		{"down-scoped root", jwt.Claims{ID: "d", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Lineage: []string{"r"}}, true},
		{"external root", jwt.Claims{ID: "r", Subject: "alice", SubjectIssuer: "https://m.example", ClientID: "o", Act: act("o")}, true},
		{"grandchild", jwt.Claims{ID: "g", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "db", Act: act("db", "res"), Lineage: []string{"r", "c"}}, true},
		{"at max depth", jwt.Claims{ID: "x", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Lineage: []string{"1", "2", "3"}}, true},
		{"beyond max depth", jwt.Claims{ID: "x", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Lineage: []string{"1", "2", "3", "4"}}, false},
		{"missing jti", jwt.Claims{Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o"}, false},
		{"missing sub", jwt.Claims{ID: "r", ClientID: "o"}, false},
		{"missing sub_iss", jwt.Claims{ID: "r", Subject: "o", ClientID: "o"}, false},
		{"act dropped: holder differs from subject", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "res", Lineage: []string{"r"}}, false},
		{"act names another holder", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "res", Act: act("db"), Lineage: []string{"r"}}, false},
		{"more actors than ancestors allow", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "a", Act: act("a", "b", "c"), Lineage: []string{"r"}}, false},
		{"empty actor", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "a", Act: act("a", ""), Lineage: []string{"r"}}, false},
		{"duplicate lineage", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Lineage: []string{"r", "r"}}, false},
		{"own jti in lineage", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Lineage: []string{"c"}}, false},
		{"empty lineage entry", jwt.Claims{ID: "c", Subject: "o", SubjectIssuer: "https://m.example", ClientID: "o", Lineage: []string{""}}, false},
	}
	for _, tt := range tests {
		err := CheckStructure(&tt.c, 3)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrMalformedChain) {
			t.Errorf("%s: err = %v, want ErrMalformedChain", tt.name, err)
		}
	}
}
