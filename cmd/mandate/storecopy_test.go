package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestStoreCopyCommand: `mandate store copy` moves what a stopped `serve`
// on bbolt kept — tokens, revocations, a suspension, signing keys sealed
// under the KEK, the audit trail — into PostgreSQL, and refuses a second
// copy. `serve` on the copy, as the replica the trail was copied to,
// enforces the revocations (descendants included) and the suspension,
// signs with the same key, serves the feed from the cursor a verifier had
// before the move, and `audit verify` through it passes: the anchor taken
// from the file before the copy still matches, under the records appended
// since.
func TestStoreCopyCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server as a child process, twice, and PostgreSQL")
	}
	db := pgtest.Own(t)
	dsn := db.NewDatabase(t)
	kek := clusterKEK(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	common := fmt.Sprintf(`issuer: %s
listen: 127.0.0.1:0
signing: {kek_file: %q}
deviation: {max_denials: 2, window: 1h}
`, clusterIssuer, kek) + crashClients

	// On bbolt: tokens, an exchange, a revocation, a suspension.
	src := startCrashChild(t, writeConfig(t, common+fmt.Sprintf("data_dir: %q\n", dataDir)))
	hc := &http.Client{Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	ctx := context.Background()
	mint := func(base, client string, form url.Values) string {
		t.Helper()
		form.Set("grant_type", "client_credentials")
		a := clusterCall(ctx, hc, base, "/oauth2/token", client, form)
		if a.err != nil || a.code != http.StatusOK {
			t.Fatalf("mint for %s: %d %v %v", client, a.code, a.body, a.err)
		}
		return fmt.Sprint(a.body["access_token"])
	}
	feed := func(base, since string) clusterAnswer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/oauth2/revocations?since="+url.QueryEscape(since), nil)
		req.SetBasicAuth("rs", crashSecret)
		a := clusterGet(hc, req)
		if a.err != nil || a.code != http.StatusOK {
			t.Fatalf("feed: %d %v %v", a.code, a.body, a.err)
		}
		return a
	}
	kept := mint(src.base, "orchestrator", url.Values{})
	revoked := mint(src.base, "orchestrator", url.Values{})
	a := clusterCall(ctx, hc, src.base, "/oauth2/token", "orchestrator", url.Values{
		"grant_type": {oauth.GrantTokenExchange}, "subject_token": {revoked}, "subject_token_type": {oauth.TokenTypeAccessToken},
		"actor_token":      {mint(src.base, "researcher", url.Values{"audience": {clusterIssuer}})},
		"actor_token_type": {oauth.TokenTypeAccessToken},
	})
	if a.code != http.StatusOK {
		t.Fatalf("exchange: %d %v %v", a.code, a.body, a.err)
	}
	delegated := fmt.Sprint(a.body["access_token"])
	cursor := fmt.Sprint(feed(src.base, "").body["cursor"])
	if a := clusterCall(ctx, hc, src.base, "/oauth2/revoke", "orchestrator", url.Values{"token": {revoked}}); a.code != http.StatusOK {
		t.Fatalf("revoke: %d %v %v", a.code, a.body, a.err)
	}
	held := mint(src.base, "researcher", url.Values{})
	for range 2 { // widening twice: the researcher is suspended, its tokens revoked
		if a := clusterCall(ctx, hc, src.base, "/oauth2/token", "researcher", url.Values{"grant_type": {"client_credentials"}, "scope": {"db:write:x"}}); a.code != http.StatusBadRequest {
			t.Fatalf("widening: %d %v %v", a.code, a.body, a.err)
		}
	}
	suspended := func(base string) {
		t.Helper()
		a := clusterCall(ctx, hc, base, "/oauth2/token", "researcher", url.Values{"grant_type": {"client_credentials"}})
		if a.code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(a.body["error_description"]), "suspended") {
			t.Errorf("a mint by the suspended researcher: %d %v %v", a.code, a.body, a.err)
		}
	}
	suspended(src.base)
	kid := tokenKID(t, kept)
	if err := src.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-src.exited
	if src.err != nil {
		src.dump(t)
		t.Fatalf("serve on bbolt ended with %v after SIGTERM", src.err)
	}
	out, err := runCLI(t, "", "audit", "verify", "--db", dataDir)
	anchor := regexp.MustCompile(`head (\d+:[0-9a-f]{64})`).FindStringSubmatch(out)
	if err != nil || anchor == nil {
		t.Fatalf("audit verify --db before the copy: %v\n%s", err, out)
	}

	// The copy, with the KEK and the DSN as an operator gives them.
	t.Setenv("MANDATE_SIGNING_KEK", "")
	t.Setenv("MANDATE_SIGNING_KEK_FILE", kek)
	t.Setenv("MANDATE_STORE_POSTGRES_DSN", "")
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	copyArgs := []string{"store", "copy", "--from", dataDir, "--to-dsn-file", dsnFile, "--replica", "r1", "--format", "json"}
	out, err = runCLI(t, "", copyArgs...)
	if err != nil {
		t.Fatalf("store copy: %v\n%s", err, out)
	}
	var rep struct {
		StoreID     string `json:"store_id"`
		Tokens      int    `json:"tokens"`
		Revocations int    `json:"revocations"`
		Suspensions int    `json:"suspensions"`
		Keys        int    `json:"signing_keys"`
		Audit       int    `json:"audit_records"`
		Replica     string `json:"replica"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("store copy --format json: %v: %s", err, out)
	}
	// Five tokens: two roots, the actor's identity token, the child, the
	// researcher's own; the suspension revoked the researcher's live ones.
	if rep.StoreID == "" || rep.Tokens != 5 || rep.Revocations < 2 || rep.Suspensions != 1 || rep.Keys < 1 || rep.Audit < 6 || rep.Replica != "r1" {
		t.Errorf("store copy reports %+v", rep)
	}
	t.Logf("store copy: %+v", rep)
	if out, err := runCLI(t, "", copyArgs...); err == nil || strings.Contains(out+err.Error(), dsn) {
		t.Errorf("a second copy into the same database: %v\n%s", err, out)
	}

	// serve on the copy, as replica r1.
	dst := startCrashChild(t, writeConfig(t, common+fmt.Sprintf("store: {postgres: {dsn: %q, replica: r1}}\n", dsn)))
	for tok, active := range map[string]bool{kept: true, revoked: false, delegated: false, held: false} {
		a := clusterCall(ctx, hc, dst.base, "/oauth2/introspect", "rs", url.Values{"token": {tok}})
		if a.code != http.StatusOK || a.body["active"] != active {
			t.Errorf("introspection on PostgreSQL of a token of the file (want active %v): %d %v %v", active, a.code, a.body, a.err)
		}
	}
	suspended(dst.base)
	if got := tokenKID(t, mint(dst.base, "orchestrator", url.Values{})); got != kid {
		t.Errorf("serve on PostgreSQL signs with %s, want the file's key %s", got, kid)
	}
	f := feed(dst.base, cursor)
	entries, _ := f.body["revocations"].([]any)
	found := false
	for _, e := range entries {
		m, _ := e.(map[string]any)
		found = found || m["jti"] == claimsJTI(t, revoked)
	}
	if f.body["reset"] != false || !found {
		t.Errorf("the feed on PostgreSQL from the cursor of the file: %v", f.body)
	}

	// audit verify through the server: every chain intact, and the file's
	// head, anchored before the copy, still there in r1's.
	t.Setenv("MANDATE_SERVER", dst.base)
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", crashSecret)
	out, err = runCLI(t, "", "audit", "verify", "--anchor", anchor[1])
	if err != nil || !strings.Contains(out, "audit trail intact") || !strings.Contains(out, "matches") {
		t.Errorf("audit verify on PostgreSQL with the file's anchor %s: %v\n%s", anchor[1], err, out)
	}
	t.Logf("audit verify --anchor %s on PostgreSQL:\n%s", anchor[1], out)
}

// claimsJTI is a token's jti, read without verifying.
func claimsJTI(t *testing.T, raw string) string {
	t.Helper()
	tok, err := decodeCrashToken(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tok.jti
}

// tokenKID is the kid in a token's header, read without verifying.
func tokenKID(t *testing.T, raw string) string {
	t.Helper()
	head, _, _ := strings.Cut(raw, ".")
	var h struct {
		KID string `json:"kid"`
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	if err != nil || h.KID == "" {
		t.Fatalf("token header: %v %s", err, b)
	}
	return h.KID
}
