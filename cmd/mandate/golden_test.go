package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// goldenCLI compares a CLI transcript, normalized, with
// cmd/mandate/testdata/golden/cli-NAME, or rewrites it with -update.
func goldenCLI(t *testing.T, name, out string, n *normalizer) {
	t.Helper()
	path := filepath.Join("testdata", "golden", "cli-"+name)
	got := []byte(n.apply(out))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/mandate -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// normalizer replaces the volatile parts of a CLI's output (jtis, kids,
// temporary paths, ports) with placeholders, so golden files compare
// exactly. Times need none: the tests run on fixed clocks.
type normalizer struct {
	pairs []string // old, placeholder, ... applied in order
}

// add registers a volatile value and its placeholder; empty values are
// ignored.
func (n *normalizer) add(value, placeholder string) *normalizer {
	if value != "" {
		n.pairs = append(n.pairs, value, placeholder)
	}
	return n
}

var (
	portRE = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)
	tempRE = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/[^\s"',)]+`)
	hashRE = regexp.MustCompile(`\b[0-9a-f]{64}\b`) // audit hashes: they cover jtis
)

// apply replaces the registered values, then ports, temporary paths and
// audit hashes.
func (n *normalizer) apply(s string) string {
	if n != nil {
		s = strings.NewReplacer(n.pairs...).Replace(s)
	}
	s = portRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = tempRE.ReplaceAllString(s, "TMP")
	return hashRE.ReplaceAllString(s, "HASH")
}
