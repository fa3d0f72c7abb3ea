package httpapi_test

import (
	"bytes"
	"log/slog"
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
