package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mandate-auth/mandate/delegation"
	"github.com/mandate-auth/mandate/delegation/oauth"
	"github.com/mandate-auth/mandate/store"
)

// Admin API paths (for the CLI); every route needs an admin client (HTTP Basic).
const (
	PathAdminTokens      = "/admin/tokens"
	PathAdminLineage     = "/admin/lineage/:jti"
	PathAdminRevoke      = "/admin/revoke"
	PathAdminKeys        = "/admin/keys"
	PathAdminKeysRotate  = "/admin/keys/rotate"
	PathAdminAudit       = "/admin/audit"
	PathAdminAuditVerify = "/admin/audit/verify"
)

// maxAuditWait caps an audit long poll (audit tail -f).
const maxAuditWait = 20 * time.Second

func (a *api) registerAdmin(e *echo.Echo) {
	// A group with middleware also catches unmatched paths under its prefix,
	// so the prefix must be /admin, never "".
	g := e.Group("/admin", a.requireAdmin)
	rel := func(p string) string { return strings.TrimPrefix(p, "/admin") }
	g.GET(rel(PathAdminTokens), a.adminTokens)
	g.GET(rel(PathAdminLineage), a.adminLineage)
	g.POST(rel(PathAdminRevoke), a.adminRevoke)
	g.GET(rel(PathAdminKeys), a.adminKeys)
	g.POST(rel(PathAdminKeysRotate), a.adminRotate)
	g.GET(rel(PathAdminAudit), a.adminAudit)
	g.GET(rel(PathAdminAuditVerify), a.adminVerify)
}

const adminClientKey = "mandate.admin"

// requireAdmin authenticates with HTTP Basic and admits admin clients only:
// no credentials or bad ones are 401, any other client 403, and neither
// learns anything about tokens.
func (a *api) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		client, err := a.basicClient(c, func(r *delegation.Registration) error {
			if r.Role != delegation.RoleAdmin {
				return oauth.New(oauth.CodeAccessDenied, "the admin API is for admin clients")
			}
			return nil
		})
		if err != nil {
			return a.writeError(c, err)
		}
		c.Set(adminClientKey, client.ID)
		noStore(c)
		return next(c)
	}
}

func adminID(c echo.Context) string { id, _ := c.Get(adminClientKey).(string); return id }

func (a *api) adminTokens(c echo.Context) error {
	q := c.QueryParams()
	limit, _ := strconv.Atoi(q.Get("limit"))
	page, err := a.svc.ListTokens(c.Request().Context(), delegation.TokenFilter{
		Holder: q.Get("holder"), Subject: q.Get("sub"), SubjectIssuer: q.Get("sub_iss"), Root: q.Get("root"),
		Active: q.Get("active") == "true", After: q.Get("after"), Limit: limit,
	})
	if err != nil {
		return a.writeError(c, err)
	}
	return c.JSON(http.StatusOK, page)
}

func (a *api) adminLineage(c echo.Context) error {
	l, err := a.svc.Lineage(c.Request().Context(), c.Param("jti"))
	if errors.Is(err, delegation.ErrUnknownToken) {
		return c.JSON(http.StatusNotFound, oauth.Response{Error: "not_found", ErrorDescription: err.Error()})
	}
	if err != nil {
		return a.writeError(c, err)
	}
	return c.JSON(http.StatusOK, l)
}

// adminRevokeRequest is the body of POST /admin/revoke.
type adminRevokeRequest struct {
	delegation.RevokeTarget
	Reason string `json:"reason"`
}

func (a *api) adminRevoke(c echo.Context) error {
	var req adminRevokeRequest
	if err := decodeJSON(c.Request(), a.opts.MaxBodyBytes, &req); err != nil {
		return a.writeError(c, err)
	}
	res, err := a.svc.AdminRevoke(c.Request().Context(), adminID(c), req.RevokeTarget, req.Reason)
	if errors.Is(err, delegation.ErrUnknownToken) {
		return c.JSON(http.StatusNotFound, oauth.Response{Error: "not_found", ErrorDescription: err.Error()})
	}
	if err != nil {
		return a.writeError(c, err)
	}
	return c.JSON(http.StatusOK, res)
}

func (a *api) adminKeys(c echo.Context) error {
	keys, err := a.svc.Keys()
	if err != nil {
		return a.writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

func (a *api) adminRotate(c echo.Context) error {
	var req struct {
		Alg         string `json:"alg"`
		Compromised bool   `json:"compromised"`
		KID         string `json:"kid"`
		Reason      string `json:"reason"`
	}
	if err := decodeJSON(c.Request(), a.opts.MaxBodyBytes, &req); err != nil {
		return a.writeError(c, err)
	}
	if req.Compromised {
		k, old, err := a.svc.RotateCompromisedKey(c.Request().Context(), adminID(c), req.Alg, req.KID, req.Reason)
		if err != nil {
			return a.writeError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"kid": k.ID, "alg": k.Alg, "activates_at": k.ActivatesAt, "withdrawn": old})
	}
	k, err := a.svc.RotateKey(c.Request().Context(), adminID(c), req.Alg, req.Reason)
	if err != nil {
		return a.writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"kid": k.ID, "alg": k.Alg, "activates_at": k.ActivatesAt})
}

// adminAudit returns the newest ?tail=N records, or records after ?after=SEQ
// (at most ?limit=N), holding up to ?wait=SECONDS for new ones when there are
// none yet (audit tail -f).
func (a *api) adminAudit(c echo.Context) error {
	q := c.QueryParams()
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > delegation.MaxPage {
		limit = delegation.MaxPage
	}
	if n, _ := strconv.Atoi(q.Get("tail")); n > 0 {
		recs, err := a.svc.AuditTail(c.Request().Context(), min(n, delegation.MaxPage))
		if err != nil {
			return a.writeError(c, err)
		}
		return c.JSON(http.StatusOK, map[string]any{"records": append([]store.AuditRecord{}, recs...)})
	}
	wait, _ := strconv.Atoi(q.Get("wait"))
	deadline := time.Now().Add(min(time.Duration(max(wait, 0))*time.Second, maxAuditWait))
	for {
		recs, err := a.svc.AuditAfter(c.Request().Context(), after, limit)
		if err != nil {
			return a.writeError(c, err)
		}
		if len(recs) > 0 || !time.Now().Before(deadline) {
			if recs == nil {
				return c.JSON(http.StatusOK, map[string]any{"records": []any{}})
			}
			return c.JSON(http.StatusOK, map[string]any{"records": recs})
		}
		select {
		case <-c.Request().Context().Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (a *api) adminVerify(c echo.Context) error {
	rep, err := a.svc.VerifyAudit(c.Request().Context())
	if err != nil {
		return a.writeError(c, err)
	}
	return c.JSON(http.StatusOK, rep)
}

// decodeJSON reads a bounded JSON body; unknown fields are errors, so a typo
// cannot silently widen or narrow an operator's command.
func decodeJSON(r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil || int64(len(body)) > limit {
		return oauth.New(oauth.CodeInvalidRequest, "request body unreadable or larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return oauth.New(oauth.CodeInvalidRequest, "malformed JSON body: %v", err)
	}
	return nil
}
