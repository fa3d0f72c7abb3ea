package server

import (
	"os"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/store/postgres/pgtest"
)

// TestMain runs the package's tests in an environment without MANDATE_*
// variables: the configuration tests set the ones they mean, and a variable
// left in the shell (a developer's MANDATE_LISTEN, the Makefile's
// MANDATE_BIN) would otherwise change what they load and warn about. The
// project's test switches (MANDATE_TEST_*, which configuration ignores)
// stay, and the tests that need PostgreSQL get a throw-away cluster.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MANDATE_") && !strings.HasPrefix(name, "MANDATE_TEST_") {
			os.Unsetenv(name)
		}
	}
	pgtest.Main(m)
}
