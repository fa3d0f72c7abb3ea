// Package echomw adapts the chain Verifier to echo: Verify puts the verified
// *chain.Chain in the echo context (and the request context), RequireScope
// guards a route. It lives apart from package chain so that resource servers
// that do not use echo never import it.
package echomw

import (
	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/chain"
	"github.com/mandate-auth/mandate/policy"
)

const contextKey = "mandate.chain"

// Verify returns middleware that verifies the request's bearer token and
// answers refusals exactly as chain.Verifier.Middleware does (RFC 6750).
func Verify(v *chain.Verifier) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ch, err := v.Authenticate(c.Request())
			if err != nil {
				v.Reject(c.Response(), err)
				return nil
			}
			c.Set(contextKey, ch)
			c.SetRequest(c.Request().WithContext(chain.WithChain(c.Request().Context(), ch)))
			return next(c)
		}
	}
}

// Require returns middleware that runs a chain.Check on the chain Verify
// stored; it must run after Verify.
func Require(v *chain.Verifier, check chain.Check) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ch, ok := Chain(c)
			if !ok {
				v.Reject(c.Response(), chain.ErrNoToken)
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
func RequireScope(v *chain.Verifier, scopes ...string) echo.MiddlewareFunc {
	return Require(v, v.HasScopes(scopes...))
}

// RequirePermission lets a request through only when the verifier's call
// policy permits its chain to perform action on resource; otherwise 403
// naming the policy.
func RequirePermission(v *chain.Verifier, action policy.Action, resource policy.Entity) echo.MiddlewareFunc {
	return Require(v, v.MayCall(action, resource))
}

// Chain returns the chain Verify stored in the echo context.
func Chain(c echo.Context) (*chain.Chain, bool) {
	ch, ok := c.Get(contextKey).(*chain.Chain)
	return ch, ok
}
