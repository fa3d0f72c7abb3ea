package postgres

import (
	"net/url"
	"strings"
)

// The DSN as configuration sees it: checked without connecting, and shown
// (config check, logs) with every password masked. Nothing here ever puts
// the DSN's text in an error.

// maskedSecret stands for a password in a DSN that is shown.
const maskedSecret = "***"

// CheckDSN reports whether dsn parses as Open reads it, without
// connecting: an error matches ErrDSN and never repeats the DSN.
func CheckDSN(dsn string) error {
	_, err := parseDSN(dsn, false)
	return err
}

// HasPassword reports whether dsn itself carries a password (password= or
// sslpassword=, or a URL's user:password@), as opposed to one found in a
// password file or the environment: a DSN that does should not sit in clear
// in a configuration file.
func HasPassword(dsn string) bool {
	if CheckDSN(dsn) != nil {
		return false
	}
	masked, ok := mask(dsn)
	return !ok || masked != dsn // a DSN this cannot read is taken to hold one
}

// MaskDSN is dsn with the value of every password it carries (password,
// sslpassword, a URL's user:password@) replaced by ***, for showing what a
// server runs with. A DSN that does not parse is not shown at all: the
// answer then only says so.
func MaskDSN(dsn string) string {
	if CheckDSN(dsn) != nil {
		return "(a DSN that does not parse)"
	}
	if masked, ok := mask(dsn); ok {
		return masked
	}
	return Describe(dsn) + " (password, if any, hidden)"
}

// mask is dsn with its passwords masked; ok is false when its text could
// not be read (it parses, but not as this reads it).
func mask(dsn string) (string, bool) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return maskURL(dsn)
	}
	return maskKeywordValue(dsn)
}

// secretKey reports whether a DSN keyword (or URL query parameter) names a
// password.
func secretKey(k string) bool { return k == "password" || k == "sslpassword" }

// maskURL masks a postgres:// URL's user password and password parameters.
func maskURL(dsn string) (string, bool) {
	scheme, rest, _ := strings.Cut(dsn, "://")
	// The authority ends at the first '/', '?' or '#'; userinfo is before
	// its last '@'.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user, _, hasPassword := strings.Cut(authority[:at], ":")
		if hasPassword {
			authority = user + ":" + maskedSecret + authority[at:]
		}
	}
	path, query, hasQuery := strings.Cut(tail, "?")
	if hasQuery {
		fragment := ""
		if i := strings.IndexByte(query, '#'); i >= 0 {
			query, fragment = query[:i], query[i:]
		}
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				return "", false
			}
			if secretKey(key) {
				parts[i] = k + "=" + maskedSecret
			}
		}
		tail = path + "?" + strings.Join(parts, "&") + fragment
	}
	return scheme + "://" + authority + tail, true
}

// maskKeywordValue masks the password values of a key=value DSN, read as
// libpq (and pgconn) reads one: keywords and values separated by '=', values
// unquoted (backslash escapes the next byte) or single-quoted.
func maskKeywordValue(s string) (string, bool) {
	var out strings.Builder
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	i := 0
	for i < len(s) {
		start := i
		for i < len(s) && space(s[i]) {
			i++
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			if strings.TrimSpace(s[i:]) != "" {
				return "", false
			}
			out.WriteString(s[start:])
			break
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		for i < len(s) && space(s[i]) {
			i++
		}
		valStart := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return "", false
			}
			i++ // the closing quote
		} else {
			for i < len(s) && !space(s[i]) {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			i = min(i, len(s))
		}
		out.WriteString(s[start:valStart])
		if secretKey(key) {
			out.WriteString(maskedSecret)
		} else {
			out.WriteString(s[valStart:i])
		}
	}
	return out.String(), true
}
