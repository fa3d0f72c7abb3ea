package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestLogsNeverHoldTokensOrSecrets drives issuance, refusals, failed
// authentication and revocation, then reads every log line: jtis yes, whole
// tokens and secrets never.
func TestLogsNeverHoldTokensOrSecrets(t *testing.T) {
	var buf syncBuffer
	env := dt.New(t, dt.Options{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	root, child, grand := chainOf(t, env)
	env.Exchange(t, "db-agent", grand, "", url.Values{"scope": {"db:write:x"}})
	env.Exchange(t, "outsider", child, "", nil)
	env.Exchange(t, "researcher", dt.Tamper(t, child, func(c map[string]any) { c["scope"] = "*" }), "", nil)
	env.Post(t, "token_endpoint", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {"orchestrator"}, "client_secret": {"guessed-secret"}})
	revoke(t, env, "orchestrator", root)
	env.Exchange(t, "db-agent", grand, "", nil)

	logs := buf.b.String()
	if !strings.Contains(logs, env.Claims(t, root).ID) {
		t.Fatalf("logs do not name the jtis they are about:\n%s", logs)
	}
	for _, tok := range []string{root, child, grand} {
		for _, part := range strings.Split(tok, ".") {
			if strings.Contains(logs, part) {
				t.Fatalf("logs hold a token segment:\n%s", logs)
			}
		}
	}
	for _, secret := range []string{dt.Secret("orchestrator"), dt.Secret("researcher"), "guessed-secret"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs hold a secret:\n%s", logs)
		}
	}
}

// TestLoggedAddressesCannotBeForged: a failed authentication is logged with
// the connection's address, whatever X-Forwarded-For or X-Real-IP a client
// sends, unless the connection comes from a configured trusted proxy.
func TestLoggedAddressesCannotBeForged(t *testing.T) {
	for _, tt := range []struct {
		name    string
		proxies []string
		want    string
	}{
		{"no trusted proxy", nil, `"remote":"127.0.0.1"`},
		{"loopback is a trusted proxy", []string{"127.0.0.1"}, `"remote":"203.0.113.7"`},
		{"another network is", []string{"10.0.0.0/8"}, `"remote":"127.0.0.1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			env := dt.New(t, dt.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), TrustedProxies: tt.proxies})
			req, _ := http.NewRequest(http.MethodPost, env.Endpoint(t, "token_endpoint"), strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", dt.BasicAuth("orchestrator", "wrong"))
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Real-IP", "198.51.100.9")
			env.Do(t, req)
			if logs := buf.String(); !strings.Contains(logs, tt.want) || strings.Contains(logs, "198.51.100.9") {
				t.Errorf("want %s in:\n%s", tt.want, logs)
			}
		})
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
