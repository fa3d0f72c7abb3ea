package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update rewrites the golden files instead of comparing with them:
// go test ./cmd/mandate -update. Every golden test of package main uses it.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares out with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, out []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/mandate -update to create it)", err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, out, want)
	}
}
