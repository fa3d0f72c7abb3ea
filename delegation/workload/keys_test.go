package workload_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/workload"
)

func jwks(kids ...string) string {
	var keys []string
	for _, kid := range kids {
		pub, _, _ := ed25519.GenerateKey(nil)
		keys = append(keys, fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":%q,"x":%q}`, kid, base64.RawURLEncoding.EncodeToString(pub)))
	}
	return `{"keys":[` + strings.Join(keys, ",") + `]}`
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// issuer serves a JWKS whose kids the test sets, counting fetches.
type issuer struct {
	srv     *httptest.Server
	kids    atomic.Value
	fetches atomic.Int32
	down    atomic.Bool
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{}
	is.kids.Store([]string{"k1"})
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		if is.down.Load() {
			http.Error(w, "down", 503)
			return
		}
		w.Write([]byte(jwks(is.kids.Load().([]string)...)))
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, is.srv.URL, is.srv.URL+"/jwks")
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func TestRemoteKeysAreCachedAndRefreshedWithinBounds(t *testing.T) {
	is := newIssuer(t)
	c := &clock{time.Unix(1_800_000_000, 0)}
	keys, err := workload.NewRemoteKeys(workload.RemoteOptions{JWKSURL: is.srv.URL + "/jwks", Now: c.now, MinRefresh: 5 * time.Second, MaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys.ResolveKey("k1"); !ok || is.fetches.Load() != 1 {
		t.Fatalf("first resolve: fetches %d", is.fetches.Load())
	}
	keys.ResolveKey("k1")
	// Unknown kids (forged, say) fetch at most once per MinRefresh: within
	// it of the first fetch, none.
	for range 50 {
		if _, ok := keys.ResolveKey("forged"); ok {
			t.Fatal("a forged kid resolved")
		}
	}
	if n := is.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for a known kid and 50 forged ones, want 1", n)
	}
	// The issuer rotates: the new kid resolves once MinRefresh has passed.
	is.kids.Store([]string{"k1", "k2"})
	if _, ok := keys.ResolveKey("k2"); ok {
		t.Error("k2 resolved before MinRefresh passed")
	}
	c.t = c.t.Add(5 * time.Second)
	if _, ok := keys.ResolveKey("k2"); !ok {
		t.Error("k2 not resolved after MinRefresh")
	}
	if n := is.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// Past MaxAge with the issuer down, the old set is no longer trusted.
	is.down.Store(true)
	c.t = c.t.Add(2 * time.Minute)
	if _, ok := keys.ResolveKey("k1"); ok {
		t.Error("a set older than MaxAge was trusted while the issuer was down")
	}
	if keys.Err() == nil || !strings.Contains(keys.Err().Error(), "503") {
		t.Errorf("Err = %v", keys.Err())
	}
	is.down.Store(false)
	c.t = c.t.Add(5 * time.Second)
	if _, ok := keys.ResolveKey("k1"); !ok || keys.Err() != nil {
		t.Errorf("no recovery: %v", keys.Err())
	}
}

func TestDiscoveryStaysOnTheIssuersOrigin(t *testing.T) {
	is := newIssuer(t)
	keys, err := workload.NewRemoteKeys(workload.RemoteOptions{Issuer: is.srv.URL, Discovery: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys.ResolveKey("k1"); !ok {
		t.Fatalf("discovered keys: %v", keys.Err())
	}
	// A configuration pointing elsewhere, or naming another issuer, is refused.
	other := newIssuer(t)
	for name, doc := range map[string]string{
		"jwks elsewhere": fmt.Sprintf(`{"issuer":"%%s","jwks_uri":%q}`, other.srv.URL+"/jwks"),
		"another issuer": `{"issuer":"https://evil.example","jwks_uri":"%s/jwks"}`,
	} {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := doc
			if strings.Contains(d, "%s") {
				d = fmt.Sprintf(d, srv.URL)
			}
			w.Write([]byte(d))
		}))
		keys, _ := workload.NewRemoteKeys(workload.RemoteOptions{Issuer: srv.URL, Discovery: true})
		if _, ok := keys.ResolveKey("k1"); ok || keys.Err() == nil {
			t.Errorf("%s: resolved (err %v)", name, keys.Err())
		}
		srv.Close()
	}
}

func TestNoRedirectLeavesTheOriginAndDocumentsAreBounded(t *testing.T) {
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Store(true)
		w.Write([]byte(jwks("k1")))
	}))
	defer elsewhere.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/jwks", http.StatusFound)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/jwks", http.StatusFound) })
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(jwks("k1"))) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 2<<20) + `]}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]bool{"/away": false, "/here": true, "/huge": false} {
		keys, err := workload.NewRemoteKeys(workload.RemoteOptions{JWKSURL: srv.URL + path})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := keys.ResolveKey("k1"); ok != want {
			t.Errorf("%s: resolved %v (err %v)", path, ok, keys.Err())
		}
	}
	if followed.Load() {
		t.Error("a redirect to another origin was followed")
	}
}

func TestRemoteKeysRefuseUnsafeSources(t *testing.T) {
	for _, o := range []workload.RemoteOptions{
		{}, {JWKSURL: "http://keys.example/jwks"}, {JWKSURL: "ftp://keys.example/jwks"}, {JWKSURL: "https://u:p@keys.example/jwks"},
		{JWKSURL: "/jwks"}, {Issuer: "https://a.example", Discovery: true, JWKSURL: "https://a.example/jwks"},
	} {
		if _, err := workload.NewRemoteKeys(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, o := range []workload.RemoteOptions{{JWKSURL: "https://keys.example/jwks"}, {JWKSURL: "http://127.0.0.1:8080/jwks"}, {Issuer: "http://localhost:9", Discovery: true}} {
		if _, err := workload.NewRemoteKeys(o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// TestASlowFetchHoldsUpNoKnownKey: while a fetch for an unknown kid waits
// on a slow issuer, a key the cached set has resolves without waiting
// (the test would hang, not pass, if it waited).
func TestASlowFetchHoldsUpNoKnownKey(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var n atomic.Int32
	keys := jwks("k1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 2 {
			close(entered)
			<-release
		}
		w.Write([]byte(keys))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	c := &clock{t: time.Unix(1795770000, 0)}
	rk, err := workload.NewRemoteKeys(workload.RemoteOptions{JWKSURL: srv.URL + "/jwks", Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rk.ResolveKey("k1"); !ok {
		t.Fatal("k1 after the first fetch")
	}
	c.t = c.t.Add(10 * time.Second) // a refetch is allowed again
	done := make(chan bool)
	go func() {
		_, ok := rk.ResolveKey("forged")
		done <- ok
	}()
	<-entered // the second fetch is waiting on the issuer
	if _, ok := rk.ResolveKey("k1"); !ok {
		t.Error("a known key was not resolved while a fetch was under way")
	}
	close(release)
	if <-done {
		t.Error("a forged kid resolved")
	}
}
