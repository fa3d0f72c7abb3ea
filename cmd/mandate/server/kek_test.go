package server

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/tokens"
)

// TestSigningKeysRestSealed: with signing.kek_file, the data file holds no
// usable private key; serve refuses to start without the KEK (rather than
// make a new key), starts with it, and keys rotated later are sealed too.
func TestSigningKeysRestSealed(t *testing.T) {
	dir := t.TempDir()
	kekFile := filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(filepath.Join(dir, "data"))
	cfg.Signing.KEKFile = kekFile
	s := startTest(t, cfg)
	kid := s.Keys.CurrentKeyID()
	tok := call(t, s, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	if _, err := s.Service.RotateKey(context.Background(), "ops", "", ""); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Store.SigningKeys(context.Background())
	for _, k := range stored {
		if _, err := x509.ParsePKCS8PrivateKey(k.PKCS8); !k.Sealed || err == nil {
			t.Errorf("key %s stored in clear", k.ID)
		}
	}
	if len(stored) != 2 {
		t.Fatalf("%d keys stored", len(stored))
	}
	s.Shutdown(context.Background())

	plain := *cfg
	plain.Signing.KEKFile = ""
	if _, err := Start(&plain, Options{}); !errors.Is(err, tokens.ErrKeySealed) || !strings.Contains(err.Error(), "MANDATE_SIGNING_KEK") {
		t.Fatalf("start without the KEK: %v", err)
	}
	other := plain
	other.Signing.KEK = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32)))
	if _, err := Start(&other, Options{}); !errors.Is(err, tokens.ErrKeySealed) {
		t.Fatalf("start with another KEK: %v", err)
	}
	s = startTest(t, cfg)
	defer s.Shutdown(context.Background())
	if s.Keys.CurrentKeyID() != kid {
		t.Errorf("the signing key changed across a sealed restart")
	}
	if r := call(t, s, "/oauth2/introspect", "rs", url.Values{"token": {tok}}); r["active"] != true {
		t.Errorf("a token signed before the restart: %v", r)
	}
}

func TestKEKConfigErrors(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString(make([]byte, 16))), 0o600)
	client := "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n"
	for name, tt := range map[string]struct{ yaml, want string }{
		"readable by others": {"signing: {kek_file: " + loose + "}\n" + client, "chmod 600"},
		"too short":          {"signing: {kek_file: " + short + "}\n" + client, "signing.kek_file must be 32 random bytes"},
		"in the file":        {"signing: {kek: \"" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\"}\n" + client, "MANDATE_SIGNING_KEK"},
		"missing file":       {"signing: {kek_file: " + filepath.Join(dir, "none") + "}\n" + client, "signing.kek_file"},
	} {
		if _, _, err := Load(writeConfig(t, tt.yaml), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKEKFromTheEnvironment(t *testing.T) {
	client := "clients:\n  - id: a\n    secret_hash: \"" + testHash + "\"\n    grants: [client_credentials]\n"
	t.Setenv("MANDATE_SIGNING_KEK", "!!")
	if _, _, err := Load(writeConfig(t, client), nil); err == nil || !strings.Contains(err.Error(), "signing.kek must be 32") {
		t.Errorf("a malformed KEK in the environment: %v", err)
	}
	t.Setenv("MANDATE_SIGNING_KEK", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	cfg, _, err := Load(writeConfig(t, client), nil)
	if err != nil {
		t.Fatal(err)
	}
	if kek, err := cfg.Signing.kek(); err != nil || len(kek) != 32 {
		t.Errorf("KEK from the environment: %v", err)
	}
}
