package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreCopyRefusals: store copy names what is missing — the source, the
// target database, the KEK — and never repeats the DSN. (The copy itself is
// tested against PostgreSQL in cmd/mandate/server: TestCopyStoreToPostgres;
// the command end to end, from `serve` on bbolt to `serve` on PostgreSQL, in
// TestStoreCopyCommand.)
func TestStoreCopyRefusals(t *testing.T) {
	const secret = "s3cret-pw"
	t.Setenv("MANDATE_SIGNING_KEK", "")
	t.Setenv("MANDATE_SIGNING_KEK_FILE", "")
	t.Setenv("MANDATE_STORE_POSTGRES_DSN", "")
	dir := t.TempDir()
	open := filepath.Join(dir, "dsn-open")
	if err := os.WriteFile(open, []byte("postgres://m:"+secret+"@db/m"), 0o644); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "dsn")
	if err := os.WriteFile(private, []byte("postgres://m:"+secret+"@db/m"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"store", "copy"}, "--from is required"},
		{[]string{"store", "copy", "--from", dir}, "no target database"},
		{[]string{"store", "copy", "--from", dir, "--to-dsn-file", open}, "others may read it"},
		{[]string{"store", "copy", "--from", dir, "--to-dsn-file", private}, "key-encryption key is required"},
		{[]string{"store", "copy", "--from", dir, "--to-dsn-file", private, "--format", "yaml"}, "--format"},
		{[]string{"store", "cpy"}, "unknown command"},
	} {
		out, err := runCLI(t, "", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error()+out, secret) {
			t.Errorf("%v: %q %v (want %q)", c.args, out, err, c.want)
		}
	}
}
