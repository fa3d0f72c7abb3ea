package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mandate-auth/mandate/store/postgres"
)

// TestMaskDSN: a DSN is shown with every password it carries masked, in
// either spelling, whatever the quoting; the rest is kept as written, and a
// DSN that does not parse is not shown at all.
func TestMaskDSN(t *testing.T) {
	const pw = "Zq8-s3cret"
	for _, tt := range []struct{ dsn, want string }{
		{"host=/tmp user=m password=" + pw + " dbname=m", "host=/tmp user=m password=*** dbname=m"},
		{"host=/tmp password = '" + pw + " with \\' quote' dbname=m", "host=/tmp password = *** dbname=m"},
		{"password=" + pw + `\ x host=db`, "password=*** host=db"},
		{"host=db sslpassword=" + pw, "host=db sslpassword=***"},
		{"host=db user=m", "host=db user=m"},
		{"postgres://m:" + pw + "@db1:5432,db2:5432/mandate?target_session_attrs=read-write", "postgres://m:***@db1:5432,db2:5432/mandate?target_session_attrs=read-write"},
		{"postgresql://m@db/mandate?password=" + pw + "&sslmode=disable", "postgresql://m@db/mandate?password=***&sslmode=disable"},
		{"postgres://m:p%40" + pw + "@db/mandate", "postgres://m:***@db/mandate"},
		{"postgres://db/mandate", "postgres://db/mandate"},
		{"host=/tmp password='" + pw, "(a DSN that does not parse)"},
		{"postgres://m:" + pw + "@[::1/x", "(a DSN that does not parse)"},
	} {
		got := postgres.MaskDSN(tt.dsn)
		if got != tt.want {
			t.Errorf("MaskDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
		if strings.Contains(got, pw) {
			t.Errorf("MaskDSN(%q) shows the password", tt.dsn)
		}
		if has := postgres.HasPassword(tt.dsn); has != (tt.want != tt.dsn && !strings.HasPrefix(tt.want, "(")) {
			t.Errorf("HasPassword(%q) = %v", tt.dsn, has)
		}
	}
	for _, bad := range []string{"", "   ", "host=/tmp password='" + pw, "postgres://x:" + pw + "@h:99999999/d"} {
		err := postgres.CheckDSN(bad)
		if !errors.Is(err, postgres.ErrDSN) || (err != nil && strings.Contains(err.Error(), pw)) {
			t.Errorf("CheckDSN(%q) = %v", bad, err)
		}
	}
}
