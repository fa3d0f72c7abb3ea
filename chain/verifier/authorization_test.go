package verifier

import (
	"net/http"
	"testing"
)

// TestAuthorizationTrimsOnlyHTTPWhiteSpace: spaces and tabs around the
// token go, as in the Python and TypeScript SDKs; any other space
// (a vertical tab, a no-break space) stays part of the token, which then
// fails verification rather than being silently repaired.
func TestAuthorizationTrimsOnlyHTTPWhiteSpace(t *testing.T) {
	for value, want := range map[string]string{
		"Bearer  abc\t ": "abc",
		"Bearer abc\v":   "abc\v",
		"Bearer abc\xa0": "abc\xa0",
		"DPoP \u3000abc": "\u3000abc",
	} {
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		r.Header.Set("Authorization", value)
		if _, tok, err := authorization(r); err != nil || tok != want {
			t.Errorf("%q: token %q, err %v; want %q", value, tok, err, want)
		}
	}
}
