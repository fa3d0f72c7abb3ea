package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	dt "github.com/mandate-auth/mandate/delegation/delegationtest"
)

// writeConfig writes a YAML configuration into a fresh directory and
// returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testHash is the bcrypt hash (cost 4) of "test-secret", as in testdata/config/valid.yaml.
const testHash = "$2a$04$ypxlCvXBjrq8/oU3d0c2BOgZ.nRtE5hybsdx5IfS9l7YZM.8NHdZe"

// operatorEnv starts a real server for CLI tests, points the CLI's clock at
// the server's and sets MANDATE_SERVER and the admin client "ops" in the
// environment, as an operator would.
func operatorEnv(t *testing.T) *dt.Env {
	t.Helper()
	env := dt.New(t, dt.Options{})
	clockNow = env.Clock.Now
	t.Cleanup(func() { clockNow = time.Now })
	t.Setenv("MANDATE_SERVER", env.URL)
	t.Setenv("MANDATE_CLIENT_ID", "ops")
	t.Setenv("MANDATE_CLIENT_SECRET", dt.Secret("ops"))
	return env
}
