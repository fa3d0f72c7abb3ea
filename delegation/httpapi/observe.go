package httpapi

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/delegation"
)

// Observation is one answered request, for metrics: the route pattern (not
// the raw path), the grant of a token request, the HTTP status, the OAuth
// error code of a refusal, and how long the answer took. Every label is
// drawn from a small fixed set, never from the request's text.
type Observation struct {
	Route    string
	Grant    string // a served grant's name (delegation.Grants), "other", or "" off the token endpoint
	Status   int
	Code     string // "" when the request succeeded
	Duration time.Duration
}

const (
	ctxGrant = "mandate.grant"
	ctxCode  = "mandate.code"
)

// observe reports each request to opts.Observe.
func (a *api) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // render now, so the status is known
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		code, _ := c.Get(ctxCode).(string)
		grant, _ := c.Get(ctxGrant).(string)
		a.opts.Observe(Observation{Route: route, Grant: grant, Status: c.Response().Status, Code: code, Duration: time.Since(start)})
		return nil
	}
}

// grantLabel maps a grant_type parameter onto a bounded label: the name of
// a grant the core serves, or "other".
func grantLabel(g string) string {
	if name, ok := delegation.GrantName(g); ok {
		return name
	}
	return "other"
}
