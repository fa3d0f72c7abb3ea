package server

import (
	"os"
	"strings"
	"testing"
)

// TestMain runs the package's tests in an environment without MANDATE_*
// variables: the configuration tests set the ones they mean, and a variable
// left in the shell (a developer's MANDATE_LISTEN, the Makefile's
// MANDATE_BIN) would otherwise change what they load and warn about.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MANDATE_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}
