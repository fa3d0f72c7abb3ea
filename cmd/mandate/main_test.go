package main

import (
	"os"
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
