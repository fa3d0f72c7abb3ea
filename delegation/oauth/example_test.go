package oauth_test

import (
	"errors"
	"fmt"

	"github.com/mandate-auth/mandate/delegation/oauth"
)

// An *oauth.Error carries the RFC code, the HTTP status it is sent with and
// a description safe to show; its cause stays internal. Callers branch on
// the code with errors.Is, through any wrapping.
func ExampleError() {
	cause := errors.New("bbolt: disk full at /var/lib/mandate")
	err := fmt.Errorf("exchange: %w", oauth.Wrap(cause, oauth.CodeServerError, "could not record the token"))

	e := oauth.As(err)
	fmt.Println(e.Status, e.Body().Error, e.Body().ErrorDescription)
	fmt.Println(errors.Is(err, oauth.ErrServerError), errors.Is(err, oauth.ErrInvalidScope))
	fmt.Println(errors.Is(err, cause)) // for logs only: Error() never renders it
	fmt.Println(e)

	refused := oauth.New(oauth.CodeInvalidScope, "scope %q is not covered by the subject_token's scope", "db:write:orders")
	fmt.Println(refused.Status, refused)
	// Output:
	// 500 server_error could not record the token
	// true false
	// true
	// server_error: could not record the token
	// 400 invalid_scope: scope "db:write:orders" is not covered by the subject_token's scope
}
