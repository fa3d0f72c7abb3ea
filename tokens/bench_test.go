package tokens_test

import (
	"testing"

	"github.com/mandate-auth/mandate/tokens"
)

func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		b.Run(alg, func(b *testing.B) {
			r := openRing(b, b.TempDir(), alg)
			c := sampleClaims()
			for b.Loop() {
				if _, err := r.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{tokens.AlgEdDSA, tokens.AlgES256} {
		b.Run(alg, func(b *testing.B) {
			r := openRing(b, b.TempDir(), alg)
			tok, _ := r.Sign(sampleClaims())
			for b.Loop() {
				if _, err := r.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
