package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/cmd/mandate/server"
)

// TestSIGTERMDrainsGracefully runs serve as a child process and sends it
// SIGTERM with a token request half sent and a revocation-feed long poll
// open: the request completes (200 with a token), the long poll is answered
// at once instead of after its wait, and serve exits 0.
func TestSIGTERMDrainsGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server as a child process")
	}
	cfg := writeConfig(t, fmt.Sprintf(`issuer: http://mandate.sigterm.test
listen: 127.0.0.1:0
data_dir: %q
clients:
  - {id: orchestrator, secret_hash: "%[2]s", grants: [client_credentials], scopes: ["db:read:*"]}
  - {id: rs, secret_hash: "%[2]s", role: resource_server}
`, t.TempDir(), testHash))
	child := startCrashChild(t, cfg)

	// A long poll, from a current cursor, waiting up to 60 s.
	feed := func(since string, wait int) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/oauth2/revocations?since=%s&wait=%d", child.base, url.QueryEscape(since), wait), nil)
		req.SetBasicAuth("rs", "test-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	_, first := feed("", 0)
	cursor, _ := first["cursor"].(string)
	polled := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		if code, _ := feed(cursor, 60); code == http.StatusOK {
			polled <- time.Since(start)
		}
		close(polled)
	}()

	// A token request whose body is not all sent yet.
	conn, err := net.Dial("tcp", strings.TrimPrefix(child.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "grant_type=client_credentials&scope=db%3Aread%3Aorders"
	fmt.Fprintf(conn, "POST /oauth2/token HTTP/1.1\r\nHost: mandate.sigterm.test\r\nAuthorization: Basic %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		basicB64("orchestrator", "test-secret"), len(body), body[:10])
	// The long poll is open once the server counts it (a connection that has
	// not yet sent its whole request is active, and Shutdown waits for it).
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(metricsText(t, child.base), "mandate_feed_subscribers 1\n") {
		if time.Now().After(deadline) {
			t.Fatal("the long poll never opened")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case d, ok := <-polled:
		if !ok || d > 10*time.Second {
			t.Errorf("the long poll was not answered promptly on SIGTERM (ok=%v, after %v)", ok, d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long poll was not released on SIGTERM")
	}
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatalf("finishing the in-flight request: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "access_token") {
		t.Errorf("in-flight request: %d %s", resp.StatusCode, raw)
	}
	select {
	case <-child.exited:
		if child.err != nil {
			child.dump(t)
			t.Errorf("serve exited with %v after SIGTERM, want 0", child.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

func basicB64(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + server.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}
