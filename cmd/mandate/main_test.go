package main

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// testChildEnv, when set in the environment, makes the test binary act as the
// mandate command itself (its arguments are the CLI's), so tests can run
// `mandate serve` as a child process, and kill it, without building the
// binary. The name has no MANDATE_ prefix so the configuration never sees it.
const testChildEnv = "TEST_MANDATE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(testChildEnv) != "" {
		main() // exits non-zero on error
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestVersion: --version names the build (the module version, the commit
// when Go recorded one, and the Go version) and exits 0.
func TestVersion(t *testing.T) {
	out, err := runCLI(t, "", "--version")
	if err != nil || !strings.HasPrefix(out, "mandate ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: %q %v", out, err)
	}
}
