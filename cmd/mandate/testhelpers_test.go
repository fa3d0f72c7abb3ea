package main

import (
	"os"
	"path/filepath"
	"testing"
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
