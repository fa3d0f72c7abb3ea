package verifier

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mandate-auth/mandate/tokens/jwt"
)

// FuzzFeedAnswer: no page makes the reader panic, and every page it accepts
// holds what the follower relies on: a cursor, and entries with a jti and
// a nonzero exp within ±2^53. (The grammar case by case is in
// testdata/vectors/feed.json, which every language's follower runs.)
func FuzzFeedAnswer(f *testing.F) {
	for _, s := range []string{`{"cursor":"c1"}`, `{"cursor":"c","revocations":[{"jti":"a","exp":1795773600}],"more":true,"revoked_keys":["k"]}`,
		`{"cursor":"c","revocations":null}`, `{"CURSOR":"c"}`, `{"cursor":"c","revocations":[{"jti":"a","exp":"1"}]}`, `[]`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a feedAnswer
		if err := json.Unmarshal(data, &a); err != nil {
			return
		}
		if a.Cursor == "" {
			t.Fatalf("accepted a page without a cursor: %q", data)
		}
		for _, r := range a.Revocations {
			if r.JTI == "" || r.Exp == 0 || r.Exp > jwt.MaxNumericDate || r.Exp < -jwt.MaxNumericDate {
				t.Fatalf("accepted entry %+v from %q", r, data)
			}
		}
	})
}

// TestNewFeedRefusesWhatWouldFailLater: a follower without credentials, with
// a URL it cannot poll, or whose compromised-key reports would go nowhere is
// refused at construction.
func TestNewFeedRefusesWhatWouldFailLater(t *testing.T) {
	drop := func([]string) {}
	creds := Config{ClientID: "rs", ClientSecret: "s"}
	for name, tt := range map[string]struct {
		cfg  Config
		url  string
		drop func([]string)
		want string
	}{
		"no credentials":     {Config{}, "https://m.example/feed", drop, "ClientID and ClientSecret"},
		"no dropKeys":        {creds, "https://m.example/feed", nil, "dropKeys"},
		"a relative URL":     {creds, "/revocations/feed", drop, "http(s) URL"},
		"a query":            {creds, "https://m.example/feed?since=1", drop, "without a query"},
		"credentials in URL": {creds, "https://u:p@m.example/feed", drop, "without a query or credentials"},
		"another scheme":     {creds, "ftp://m.example/feed", drop, "http(s) URL"},
	} {
		if _, err := NewFeed(tt.cfg, tt.url, tt.drop); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one naming %q", name, err, tt.want)
		}
	}
	f, err := NewFeed(creds, "http://127.0.0.1:1/feed", drop)
	if err != nil {
		t.Fatal(err)
	}
	if f.Current(f.now()) == nil {
		t.Error("a feed never synced counts as current")
	}
}

// TestTheFeedNeverFollowsARedirect: a feed that answers 3xx fails the poll;
// the follower does not carry its credentials to where it points.
func TestTheFeedNeverFollowsARedirect(t *testing.T) {
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		w.Write([]byte(`{"cursor":"c1"}`))
	}))
	defer elsewhere.Close()
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/feed", http.StatusTemporaryRedirect)
	}))
	defer feed.Close()
	f, err := NewFeed(Config{ClientID: "rs", ClientSecret: "s"}, feed.URL+"/feed", func([]string) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("Sync = %v, want the 307 as an error", err)
	}
	if followed.Load() {
		t.Error("the follower followed the redirect")
	}
}
