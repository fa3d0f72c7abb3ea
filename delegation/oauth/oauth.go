// Package oauth holds the wire vocabulary Mandate shares with its clients: the
// RFC 6749 / RFC 8693 error type and the grant and token-type identifiers.
//
// It is deliberately tiny and dependency-free so that an orchestrator's client,
// the server core and the HTTP transport all speak the same error codes without
// importing each other. An *Error carries a public description that is safe to
// render and an internal cause that is never rendered.
package oauth

import (
	"errors"
	"fmt"
	"net/http"
)

// Grant types and token types Mandate understands (RFC 6749 §4.4, RFC 8693 §3,
// RFC 7523 §2.1).
const (
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// Error codes from RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 and RFC 9449.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidClient        = "invalid_client"
	CodeInvalidGrant         = "invalid_grant"
	CodeUnauthorizedClient   = "unauthorized_client"
	CodeUnsupportedGrantType = "unsupported_grant_type"
	CodeInvalidScope         = "invalid_scope"
	CodeInvalidTarget        = "invalid_target"
	CodeInvalidDPoPProof     = "invalid_dpop_proof"
	CodeAccessDenied         = "access_denied"
	CodeServerError          = "server_error"
	// CodeTemporarilyUnavailable (RFC 6749 §4.1.2.1) answers a request the
	// server cannot serve now — its store is unreachable — with 503 and
	// Retry-After: nothing was done, and the same request may succeed later.
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Error is an OAuth error response: an RFC code, the HTTP status it is sent with,
// a description that is safe to show the caller, and an internal cause kept for
// logs only. errors.Is matches two *Error values by code, so callers can write
// errors.Is(err, oauth.ErrInvalidScope).
type Error struct {
	Code        string
	Status      int
	Description string
	cause       error
}

// Sentinels for errors.Is comparisons; their descriptions are not meant to be rendered.
var (
	ErrInvalidRequest       = &Error{Code: CodeInvalidRequest, Status: http.StatusBadRequest}
	ErrInvalidClient        = &Error{Code: CodeInvalidClient, Status: http.StatusUnauthorized}
	ErrUnauthorizedClient   = &Error{Code: CodeUnauthorizedClient, Status: http.StatusBadRequest}
	ErrUnsupportedGrantType = &Error{Code: CodeUnsupportedGrantType, Status: http.StatusBadRequest}
	ErrInvalidScope         = &Error{Code: CodeInvalidScope, Status: http.StatusBadRequest}
	ErrInvalidTarget        = &Error{Code: CodeInvalidTarget, Status: http.StatusBadRequest}
	ErrAccessDenied         = &Error{Code: CodeAccessDenied, Status: http.StatusForbidden}
	ErrServerError          = &Error{Code: CodeServerError, Status: http.StatusInternalServerError}
)

// New returns an error with the given code and public description, using the
// status RFC 6749 assigns to that code.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Status: statusFor(code), Description: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with the given code and description that also records an
// internal cause for logs; the cause is never part of Error() or the response.
func Wrap(cause error, code, format string, args ...any) *Error {
	e := New(code, format, args...)
	e.cause = cause
	return e
}

// Errorf builds an error from a sentinel's code and status with a formatted description.
func (e *Error) Errorf(format string, args ...any) *Error {
	return &Error{Code: e.Code, Status: e.Status, Description: fmt.Sprintf(format, args...)}
}

// WithStatus returns a copy of e sent with a different HTTP status (403 for a
// forbidden endpoint, say), keeping code and description.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

// Error renders the code and the public description, never the cause.
func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap exposes the internal cause to errors.Is/As and to logs.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) && t != nil {
		return t.Code == e.Code
	}
	return false
}

// Cause returns the internal cause, if any, for logging.
func (e *Error) Cause() error { return e.cause }

// Response is the JSON body of an OAuth error (RFC 6749 §5.2).
type Response struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// Body returns the response body for e.
func (e *Error) Body() Response {
	return Response{Error: e.Code, ErrorDescription: e.Description}
}

// As converts any error into an *Error: OAuth errors pass through, anything else
// becomes a server_error whose description reveals nothing of the cause.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(err, CodeServerError, "internal error")
}

func statusFor(code string) int {
	switch code {
	case CodeInvalidClient:
		return http.StatusUnauthorized
	case CodeAccessDenied:
		return http.StatusForbidden
	case CodeServerError:
		return http.StatusInternalServerError
	case CodeTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}
