package server

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMetricsCountRequestsAndState: /metrics exposes requests by route,
// grant, status and OAuth code, and the store's state, without any label a
// request could choose.
func TestMetricsCountRequestsAndState(t *testing.T) {
	s := startTest(t, testConfig(t.TempDir()))
	if r := call(t, s, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}}); r["status"] != 200 {
		t.Fatalf("mint: %v", r)
	}
	if r := call(t, s, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"client_credentials"}, "scope": {"db:write:x"}}); r["status"] != 400 {
		t.Fatalf("widening: %v", r)
	}
	call(t, s, "/oauth2/token", "orchestrator", url.Values{"grant_type": {"x-injected\"} 1\nfake_metric"}})
	// A token presented once is remembered as verified: the cache's size shows.
	root := call(t, s, "/oauth2/token", "researcher", url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
	call(t, s, "/oauth2/introspect", "rs", url.Values{"token": {root}})
	resp, err := http.Get("http://" + s.Addr + PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	for _, want := range []string{
		`mandate_http_requests_total{code="",grant="client_credentials",route="/oauth2/token",status="200"} 2`,
		`mandate_http_requests_total{code="invalid_scope",grant="client_credentials",route="/oauth2/token",status="400"} 1`,
		`mandate_http_requests_total{code="unsupported_grant_type",grant="other",route="/oauth2/token",status="400"} 1`,
		`mandate_http_request_duration_seconds_count{grant="client_credentials",route="/oauth2/token"} 3`,
		"mandate_tokens_unexpired 2\n",
		"mandate_token_records 2\n",
		"mandate_verified_cache_entries 1\n",
		"mandate_verified_cache_bytes ",
		"mandate_revocations 0\n",
		"mandate_feed_subscribers 0\n",
		"mandate_store_file_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "orchestrator") || strings.Contains(body, "fake_metric") {
		t.Error("a request's text reached the metrics")
	}
}
