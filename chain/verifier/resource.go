package verifier

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// ResourceMetadata is an RFC 9728 protected-resource metadata document: it
// tells clients (an MCP client, for instance) which authorization server
// issues tokens for this resource, as the MCP authorization spec expects.
type ResourceMetadata struct {
	// Resource is this resource's identifier, an https URL (the audience
	// tokens must carry).
	Resource string `json:"resource"`
	// AuthorizationServers lists issuer URLs, here Mandate's.
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
}

// ResourceMetadataPath is where the document for resource is served: the
// well-known segment goes between the host and the resource's path, and the
// resource's query, if any, stays at the end (RFC 9728 §3.1).
func ResourceMetadataPath(resource string) string {
	p := "/.well-known/oauth-protected-resource"
	if u, err := url.Parse(resource); err == nil {
		p += strings.TrimSuffix(u.EscapedPath(), "/")
		if u.RawQuery != "" {
			p += "?" + u.RawQuery
		}
	}
	return p
}

// URL is the absolute URL of the document, for the resource_metadata
// parameter of WWW-Authenticate (RFC 9728 §5.1).
func (m ResourceMetadata) URL() string {
	u, err := url.Parse(m.Resource)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + ResourceMetadataPath(m.Resource)
}

// Handler serves the document as JSON. Only bearer tokens in the Authorization
// header are accepted, so bearer_methods_supported defaults to ["header"].
func (m ResourceMetadata) Handler() http.Handler {
	if m.BearerMethodsSupported == nil {
		m.BearerMethodsSupported = []string{"header"}
	}
	body, _ := json.Marshal(m)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}
