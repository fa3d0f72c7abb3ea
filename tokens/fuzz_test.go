package tokens_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/tokens"
)

// FuzzVerify feeds arbitrary strings to verification: it must never panic, and
// anything it accepts must carry exactly the claims the ring signed (a
// different encoding of the same bytes is harmless; different claims are a
// forgery).
func FuzzVerify(f *testing.F) {
	r := openRing(f, f.TempDir(), tokens.AlgEdDSA)
	good, err := r.Sign(sampleClaims())
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(b64(`{"alg":"none"}`) + "." + parts[1] + ".")
	f.Add(b64(`{"alg":"HS256","kid":"`+r.CurrentKeyID()+`"}`) + "." + parts[1] + "." + parts[2])
	f.Add(`{"payload":"e30","signatures":[{"protected":"e30","signature":""}]}`)
	f.Add("..")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := r.Verify(token)
		if err == nil && !reflect.DeepEqual(c, sampleClaims()) {
			t.Fatalf("accepted a token the ring did not sign: %q → %+v", token, c)
		}
	})
}
