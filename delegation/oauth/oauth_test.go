package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestErrorsMatchByCodeAndHideTheirCause(t *testing.T) {
	cause := errors.New("bbolt: disk full at /var/lib/mandate")
	err := fmt.Errorf("exchange: %w", Wrap(cause, CodeInvalidScope, "scope %q is not covered", "db:write:x"))
	if !errors.Is(err, ErrInvalidScope) || errors.Is(err, ErrInvalidTarget) {
		t.Error("errors.Is does not match by code")
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not reachable for logs")
	}
	e := As(err)
	if e.Status != http.StatusBadRequest || e.Body() != (Response{Error: "invalid_scope", ErrorDescription: `scope "db:write:x" is not covered`}) {
		t.Errorf("rendered as %d %+v", e.Status, e.Body())
	}
	if got := e.Error(); got != `invalid_scope: scope "db:write:x" is not covered` {
		t.Errorf("Error() = %q (must never include the cause)", got)
	}
	internal := As(cause)
	if internal.Code != CodeServerError || internal.Status != 500 || internal.Description != "internal error" {
		t.Errorf("a plain error renders as %+v", internal.Body())
	}
	for code, status := range map[string]int{CodeInvalidClient: 401, CodeAccessDenied: 403, CodeServerError: 500, CodeInvalidRequest: 400} {
		if got := New(code, "x").Status; got != status {
			t.Errorf("%s → %d, want %d", code, got, status)
		}
	}
}
