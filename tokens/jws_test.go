package tokens_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/mandate-auth/mandate/tokens"
	"github.com/mandate-auth/mandate/tokens/jwt"
)

func TestUnverifiedClaimsReadsButRefusesNonTokens(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"j1","client_id":"a","cnf":{"jkt":"k"}}`))
	c, err := jwt.Unverified("e30." + payload + ".sig")
	if err != nil || c.ID != "j1" || c.ClientID != "a" || c.Cnf.JKT != "k" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"", "a.b", "x." + payload, "e30.!!.sig", "e30." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".s"} {
		if _, err := jwt.Unverified(bad); !errors.Is(err, tokens.ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
