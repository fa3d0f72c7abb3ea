package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
)

// serveConfig is a minimal valid configuration for the serve command.
func serveConfig(dir string) *server.Config {
	return &server.Config{
		Issuer: "http://mandate.test", Listen: "127.0.0.1:0", DataDir: dir,
		Signing: server.SigningConfig{Alg: "EdDSA"},
		Tokens:  server.TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: 4, Retention: time.Hour},
		Audit:   server.AuditConfig{Retention: 24 * time.Hour},
		Clients: []server.ClientConfig{{ID: "a", Secret: "dev", Grants: []string{"client_credentials"}}},
	}
}

func TestServeCommandRefusesBadConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd(strings.NewReader(""), &out, &errOut)
	cmd.SetArgs([]string{"serve", "--config", writeConfig(t, "tokens: {max_depth: 0}\nclients: []\n")})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "tokens.max_depth") {
		t.Fatalf("err = %v", err)
	}
}

// TestServeRunsUntilCancelled: serve runs until its context ends, and on a
// terminal first says where it is, what it runs with and what to do next.
func TestServeRunsUntilCancelled(t *testing.T) {
	cfg := serveConfig(t.TempDir())
	cfg.Clients = append(cfg.Clients, server.ClientConfig{ID: "ops", Secret: "dev", Role: "admin"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var summary bytes.Buffer // written before runServer returns
	go func() { done <- runServer(ctx, cfg, slog.New(slog.DiscardHandler), &summary) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, want := range []string{"Mandate is serving.", "  listening  127.0.0.1:", "  issuer     http://mandate.test\n",
		"  metadata   http://mandate.test/.well-known/oauth-authorization-server\n", "mandate.db\n",
		"stored in clear (set signing.kek_file to seal it)", "  policy     off: only attenuation limits delegation (set policy.dir)",
		"  clients    2 registered, 1 admin", "export MANDATE_SERVER=http://mandate.test MANDATE_CLIENT_ID=ops MANDATE_CLIENT_SECRET=...",
		"log.format: json"} {
		if !strings.Contains(summary.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, summary.String())
		}
	}
}

func TestHashSecret(t *testing.T) {
	run := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		cmd := newRootCmd(strings.NewReader(stdin), &out, io.Discard)
		cmd.SetArgs(append([]string{"hash-secret", "--cost", "4"}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("my secret\n")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out)), []byte("my secret")) != nil {
		t.Errorf("hash %q does not match", out)
	}
	if strings.Contains(out, "my secret") {
		t.Error("secret echoed")
	}
	if _, err := run(""); err == nil {
		t.Error("empty stdin accepted")
	}
	out, err = run("", "--generate")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := strings.TrimSpace(strings.TrimPrefix(lines[0], "secret:"))
	hash := strings.TrimSpace(strings.TrimPrefix(lines[1], "secret_hash:"))
	if len(secret) < 43 || bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) != nil {
		t.Errorf("generate: %q", out)
	}
	// The printed hash loads as a client's secret_hash.
	if _, _, err := server.Load(writeConfig(t, "clients:\n  - id: a\n    secret_hash: \""+hash+"\"\n    grants: [client_credentials]\n"), nil); err != nil {
		t.Errorf("hash-secret output rejected by config: %v", err)
	}
}

// TestServeLogsAsConfigured: log.format text writes logfmt lines, and
// log.level hides what is below it.
func TestServeLogsAsConfigured(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, server.LogConfig{Format: "text", Level: "warn"})
	log.Info("hidden")
	log.Warn("shown", slog.String("jti", "x"))
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "level=WARN msg=shown jti=x") {
		t.Errorf("text log at warn: %q", got)
	}
	buf.Reset()
	newLogger(&buf, server.LogConfig{}).Info("m")
	if !strings.HasPrefix(buf.String(), `{"time":`) {
		t.Errorf("default log is not JSON: %q", buf.String())
	}
}
