package jwt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// TestCheckMembers: a member given twice, or named like a claim but spelt
// otherwise (case, Unicode folding), at any depth, is refused; unknown
// members and the same name in different objects are not.
func TestCheckMembers(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"exp":1,"sub":"a"}`:                             true,
		`{"x-Custom":1,"Other":{"Nested":[1,{"a":2}]}}`:   true,
		`{"act":{"sub":"a","act":{"sub":"b"}},"sub":"c"}`: true,
		`{"lineage":["a","a"]}`:                           true, // repeated values are the chain rules' business
		`[1,2,{"a":1}]`:                                   true,
		`{}`:                                              true,
		`{"exp":1,"exp":2}`:                               false,
		`{"EXP":1}`:                                       false,
		`{"Exp":1,"exp":2}`:                               false,
		"{\"\u017fub\":\"a\"}":                            false, // ſ folds to s
		"{\"\u212aid\":\"k\"}":                            false, // the Kelvin sign folds to k
		`{"act":{"sub":"a","SUB":"b"}}`:                   false,
		`{"cnf":{"jkt":"a","jkt":"b"}}`:                   false,
		`{"a":[{"x":1,"x":2}]}`:                           false,
		`{"exp":1`:                                        false,
	} {
		err := jwt.CheckMembers([]byte(in))
		if (err == nil) != ok {
			t.Errorf("%s: %v", in, err)
		}
		if err != nil && json.Valid([]byte(in)) && !errors.Is(err, jwt.ErrAmbiguousMember) {
			t.Errorf("%s: an ambiguity not typed as one: %v", in, err)
		}
	}
	if _, err := jwt.Parse([]byte(`{"jti":"a","EXP":1}`)); !errors.Is(err, jwt.ErrMalformed) {
		t.Errorf("Parse with EXP: %v", err)
	}
}

func BenchmarkCheckMembers(b *testing.B) {
	payload := []byte(`{"act":{"act":{"sub":"researcher"},"sub":"db-agent"},"aud":["https://api.example"],"client_id":"db-agent","exp":1795770240,"iat":1795769940,"iss":"https://mandate.example","jti":"grand-1","lineage":["root-1","child-1"],"nbf":1795769940,"scope":"db:read:orders","sub":"orchestrator","sub_iss":"https://mandate.example"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := jwt.CheckMembers(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceCheck is CheckMembers written the slow, obvious way, over
// encoding/json's tokenizer: the fuzz target compares the two.
func referenceCheck(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object, wantKey bool
		keys            []string
	}
	var stack []*frame
	done := func() {
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
	names := []string{"act", "alg", "ath", "aud", "b64", "client_id", "cnf", "crit", "exp", "htm", "htu", "iat", "iss", "jkt",
		"jti", "jwk", "kid", "lineage", "may_act", "nbf", "nonce", "scope", "sub", "sub_iss", "typ"}
	for {
		tok, err := dec.Token()
		if err != nil {
			return true // valid documents only reach here at io.EOF
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				done()
				continue
			}
			key := tok.(string)
			for _, k := range stack[n-1].keys {
				if k == key {
					return false
				}
			}
			for _, name := range names {
				if key != name && strings.EqualFold(key, name) {
					return false
				}
			}
			stack[n-1].keys = append(stack[n-1].keys, key)
			stack[n-1].wantKey = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{object: true, wantKey: true})
		case '[':
			stack = append(stack, &frame{})
		case ']':
			stack = stack[:len(stack)-1]
			done()
		default:
			done()
		}
	}
}

// FuzzCheckMembers: on every valid JSON document (nested no deeper than
// CheckMembers follows), the fast scanner agrees with the reference.
func FuzzCheckMembers(f *testing.F) {
	for _, s := range []string{`{"exp":1,"sub":"a"}`, `{"exp":1,"exp":2}`, `{"EXP":1}`, "{\"\u017fub\":\"a\"}", `{"a":"{\"exp\":1,\"exp\":2}"}`,
		`{"\u0065xp":1,"exp":2}`, `{"act":{"sub":"a","act":{"sub":"b","SUB":"c"}}}`, `[{"a":1},{"a":1}]`, `{"a\"b":1,"a\"b":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || bytes.Count(data, []byte("["))+bytes.Count(data, []byte("{")) > 60 {
			return
		}
		got := jwt.CheckMembers(data) == nil
		if want := referenceCheck(data); got != want {
			t.Fatalf("%q: CheckMembers says %v, the reference %v", data, got, want)
		}
	})
}
