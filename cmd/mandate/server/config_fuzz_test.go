package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig feeds arbitrary YAML to the configuration loader: it must
// never panic, and a configuration it accepts must be one the server can be
// built from without panicking either (a bad file is an error naming a key,
// never a crash at start).
func FuzzLoadConfig(f *testing.F) {
	valid, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "config", "valid.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(valid))
	f.Add("clients:\n  - id: a\n    secret: s\n    grants: [client_credentials]\n")
	f.Add("tokens: {max_depth: 99999999999999999999}\n")
	f.Add("clients: [{id: a, secret: s, grants: [token_exchange], ephemeral: {scopes: ['*']}}]\nrate_limit: {per_second: .nan}\n")
	f.Add("signing: {kek: AAAA}\nclients: [{id: a, jwks_file: /dev/null, grants: [client_credentials]}]\n")
	f.Add("&a [*a, *a]\n")
	f.Add("clients: !!binary AAAA\n")
	f.Add("clients:\n\t- id: a\n")                        // a tab indents a line
	f.Add("listen: a\nlisten: b\ntokens: {x: 1, x: 2}\n") // keys twice
	f.Add("listen: \":0\"\nrate_limit: {per_second: 1e300, burst: -1}\ncache: {max_bytes: 9e18}\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml string) {
		if strings.Contains(yaml, "/dev/") || strings.Contains(yaml, "/proc/") {
			t.Skip("the loader would read a device file named in the config")
		}
		p := filepath.Join(dir, "mandate.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := Load(p, nil)
		if err != nil {
			return
		}
		_, _ = cfg.serviceConfig()
	})
}
