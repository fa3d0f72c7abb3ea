package client

import "net/http"

// HTTPClient returns an http.Client that sends t with every request, as Do
// does: a bound token with a fresh DPoP proof for each request's method and
// URL (retried once with the server's nonce when it asks for one), redirects
// returned rather than followed. It is what a library that makes its own
// requests needs, such as the official MCP SDK's client
// (mcp.StreamableClientTransport{HTTPClient: tok.HTTPClient(nil)}).
func (t *Token) HTTPClient(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: &tokenTransport{t: t, hc: &http.Client{Transport: base}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// tokenTransport authorizes each request with a token (Token.HTTPClient).
type tokenTransport struct {
	t  *Token
	hc *http.Client // over the base transport, made once
}

func (tt *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return Do(tt.hc, tt.t, req.Clone(req.Context()))
}
