// Package echomw adapts the resource-server verifier to echo: Verify puts the
// verified *chain.Chain in the echo context (and the request context),
// Require and RequireScope guard a route. It lives apart from package
// verifier so that resource servers that do not use echo never import it;
// per-call policy checks (chain/authz) plug in through Require.
package echomw

import (
	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/chain/verifier"
)

const contextKey = "mandate.chain"

// Verify returns middleware that verifies the request's token and answers
// refusals exactly as verifier.Verifier.Middleware does (RFC 6750).
func Verify(v *verifier.Verifier) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ch, err := v.Authenticate(c.Request())
			if err != nil {
				v.Reject(c.Response(), err)
				return nil
			}
			c.Set(contextKey, ch)
			c.SetRequest(c.Request().WithContext(verifier.WithChain(c.Request().Context(), ch)))
			return next(c)
		}
	}
}

// Require returns middleware that runs a verifier.Check (HasScopes, or a
// chain/authz policy check) on the chain Verify stored; it must run after
// Verify.
func Require(v *verifier.Verifier, check verifier.Check) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ch, ok := Chain(c)
			if !ok {
				v.Reject(c.Response(), verifier.ErrNoToken)
				return nil
			}
			if !check(c.Response(), ch) {
				return nil
			}
			return next(c)
		}
	}
}

// RequireScope lets a request through only when its verified chain grants
// every scope; otherwise 403 insufficient_scope naming the missing one.
func RequireScope(v *verifier.Verifier, scopes ...string) echo.MiddlewareFunc {
	return Require(v, v.HasScopes(scopes...))
}

// Chain returns the chain Verify stored in the echo context.
func Chain(c echo.Context) (*chain.Chain, bool) {
	ch, ok := c.Get(contextKey).(*chain.Chain)
	return ch, ok
}
