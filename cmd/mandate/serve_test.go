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

func TestServeRunsUntilCancelled(t *testing.T) {
	cfg := serveConfig(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
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
