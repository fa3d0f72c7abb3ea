package verifier_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
)

// FuzzVerifier feeds arbitrary Authorization headers through BearerToken and
// Verify of a live verifier: nothing may panic, and anything accepted must be
// exactly one of the tokens Mandate issued.
func FuzzVerifier(f *testing.F) {
	r := newRig(f, nil)
	root, child, grand := chainOf(f, r.env)
	valid := map[string]*chain.Chain{}
	for _, tok := range []string{root, child, grand} {
		c, err := r.v.Verify(context.Background(), tok)
		if err != nil {
			f.Fatal(err)
		}
		valid[c.JTI] = c
		f.Add("Bearer " + tok)
	}
	h, p, s := split(grand)
	f.Add("Bearer " + h + "." + p + ".")
	f.Add("Bearer " + b64(`{"alg":"none"}`) + "." + p + "." + s)
	f.Add("bearer  " + grand)
	f.Add("Bearer " + strings.Repeat("a.", 5000))
	f.Fuzz(func(t *testing.T, authz string) {
		req, _ := http.NewRequest(http.MethodGet, "http://rs.example/", nil)
		req.Header.Set("Authorization", authz)
		tok, err := verifier.BearerToken(req)
		if err != nil {
			return
		}
		c, err := r.v.Verify(context.Background(), tok)
		if err != nil {
			return
		}
		if want, ok := valid[c.JTI]; !ok || !reflect.DeepEqual(c, want) {
			t.Fatalf("accepted a chain Mandate did not issue: %+v", c)
		}
	})
}
