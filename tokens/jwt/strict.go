package jwt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// memberNames are the JSON member names Mandate reads from a JWT's header or
// payload (its own tokens, DPoP proofs, agent tokens, client assertions,
// external identity tokens).
var memberNames = []string{
	"act", "alg", "ath", "aud", "b64", "client_id", "cnf", "crit", "exp", "htm", "htu", "iat", "iss", "jkt",
	"jti", "jwk", "kid", "lineage", "may_act", "nbf", "nonce", "scope", "sub", "sub_iss", "typ",
}

var (
	memberSet   = map[string]bool{}
	memberBytes [][]byte
)

func init() {
	for _, n := range memberNames {
		memberSet[n] = true
		memberBytes = append(memberBytes, []byte(n))
	}
}

// ErrAmbiguousMember reports a JSON object that Go's encoding/json would
// read differently from a strict decoder: a member given twice (Go keeps
// the last), or one whose name differs from a claim's only in case or by
// Unicode folding ("EXP", "ſub": Go fills the claim from it).
var ErrAmbiguousMember = errors.New("ambiguous JSON member")

// maxNesting bounds how deep CheckMembers follows objects and arrays
// (encoding/json's own limit is far larger; no JWT nests this deep).
const maxNesting = 64

// CheckMembers refuses a JWT header or payload that has, in any object, a
// member twice, or a member named like one Mandate reads but spelt
// otherwise. encoding/json accepts both, and other languages' decoders read
// them differently, so a token could mean one thing to a Go verifier and
// another to a Python or TypeScript one; every Mandate verifier refuses it
// as malformed instead (callers wrap its error so). It only scans: the
// document's validity is the decoder's business, which runs after it.
func CheckMembers(data []byte) error {
	type container struct {
		object  bool
		wantKey bool
		first   int // index in keys of this object's first key
	}
	var stackBuf [8]container
	stack := stackBuf[:0]
	var keyBuf [32][]byte
	keys := keyBuf[:0]
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) == maxNesting {
				return fmt.Errorf("JSON nested deeper than %d", maxNesting)
			}
			stack = append(stack, container{object: c == '{', wantKey: c == '{', first: len(keys)})
		case '}', ']':
			if len(stack) == 0 {
				return fmt.Errorf("unbalanced %q in JSON", c)
			}
			keys = keys[:stack[len(stack)-1].first]
			stack = stack[:len(stack)-1]
		case ',':
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].wantKey = true
			}
		case '"':
			start := i + 1
			escaped := false
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					escaped = true
					i++
				}
			}
			if i >= len(data) {
				return errors.New("unterminated string in JSON")
			}
			top := len(stack) - 1
			if top < 0 || !stack[top].object || !stack[top].wantKey {
				continue // a value
			}
			stack[top].wantKey = false
			key := data[start:i]
			if escaped {
				var s string
				if err := json.Unmarshal(data[start-1:i+1], &s); err != nil {
					return fmt.Errorf("a member name: %v", err)
				}
				key = []byte(s)
			}
			if err := checkKey(keys[stack[top].first:], key); err != nil {
				return err
			}
			keys = append(keys, key)
		}
	}
	if len(stack) > 0 {
		return errors.New("unexpected end of JSON")
	}
	return nil
}

// checkKey refuses key when the object already has it, or when it is a
// member name spelt otherwise.
func checkKey(seen [][]byte, key []byte) error {
	for _, k := range seen {
		if bytes.Equal(k, key) {
			return fmt.Errorf("%w: %q appears twice", ErrAmbiguousMember, Excerpt(string(key)))
		}
	}
	if memberSet[string(key)] {
		return nil
	}
	for i, n := range memberBytes {
		if bytes.EqualFold(key, n) {
			return fmt.Errorf("%w: %q is not %q", ErrAmbiguousMember, Excerpt(string(key)), memberNames[i])
		}
	}
	return nil
}
