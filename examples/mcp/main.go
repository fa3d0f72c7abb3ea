// Command mcp tells Mandate's MCP story end to end (README.md here): a
// Python orchestrator delegates a task to two ephemeral sub-agents; one
// calls a TypeScript MCP server (orders), which refunds through a downstream
// API by the audience exchange, never forwarding the agent's token; the
// other calls a Go MCP server (inventory). Every tool call is decided by the
// caller's chain and arguments with one Cedar policy file, a refused call
// names its policy, revoking the task stops every server within a second,
// and `mandate lineage` shows the whole tree, MCP server included.
//
// Run it from the repository root with `make example-mcp` (which prepares
// the Python virtualenv and the TypeScript SDK first), or `go run
// ./examples/mcp` once they exist.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mandate-auth/mandate/chain/mcpguard"
	"github.com/mandate-auth/mandate/chain/verifier"
	"github.com/mandate-auth/mandate/cmd/mandate/server"
	"github.com/mandate-auth/mandate/policy"
	"github.com/mandate-auth/mandate/tokens"
)

// The canonical URIs: what tokens carry as their audience. The servers
// listen on loopback; clients reach them there and ask for these.
const (
	ordersMCP    = "https://orders-mcp.example/mcp"
	inventoryMCP = "https://inventory-mcp.example/mcp"
	ordersAPI    = "https://orders.example"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "inventory" {
		if err := runInventory(context.Background(), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "inventory:", err)
			os.Exit(1)
		}
		return
	}
	o := options{Out: os.Stdout, Repo: ".", Python: envOr("PYTHON", filepath.Join(".venv", "bin", "python")),
		Node: envOr("NODE", "node"), MandateBin: os.Getenv("MANDATE_BIN")}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "example-mcp:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// options are what the story needs from its surroundings.
type options struct {
	Out io.Writer
	// Repo is the repository root; Python and Node the interpreters (the
	// checkout's virtualenv, node); MandateBin the mandate binary for
	// `mandate lineage` (empty: go run ./cmd/mandate).
	Repo, Python, Node, MandateBin string
	// BcryptCost hashes the clients' secrets (default bcrypt.DefaultCost).
	BcryptCost int
}

// client is one registration of the story, with its secret.
type client struct {
	cfg    server.ClientConfig
	secret string
}

func run(ctx context.Context, o options) error {
	o.Out = &lockedWriter{w: o.Out} // the servers' logs and the story interleave
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	repo, err := filepath.Abs(o.Repo)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mandate-mcp-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logs := slog.New(slog.NewTextHandler(io.Discard, nil))

	both := []string{ordersMCP, inventoryMCP}
	clients := map[string]*client{
		// orders:refund travels down the chain to the orders MCP server, whose
		// audience exchange may only narrow what the token it received grants.
		"orchestrator": {cfg: server.ClientConfig{Grants: []string{"client_credentials", "token_exchange"}, Scopes: []string{"tools:*", "orders:refund"}, Audiences: both,
			Ephemeral: &server.EphemeralConfig{Scopes: []string{"tools:*", "orders:refund"}, Audiences: both}}},
		"orders-mcp": {cfg: server.ClientConfig{Grants: []string{"token_exchange"}, Scopes: []string{"orders:read", "orders:refund"},
			Audiences: []string{ordersAPI}, Serves: []string{ordersMCP}}},
		"mcp-feed": {cfg: server.ClientConfig{Role: "resource_server"}},
		"ops":      {cfg: server.ClientConfig{Role: "admin"}},
	}
	cost := o.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	cfg := &server.Config{
		Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Signing: server.SigningConfig{Alg: tokens.AlgEdDSA},
		Tokens: server.TokensConfig{RootTTL: 15 * time.Minute, DelegatedTTL: 5 * time.Minute, MaxDepth: 4, Retention: 24 * time.Hour},
		Audit:  server.AuditConfig{Retention: 24 * time.Hour},
	}
	for _, id := range []string{"orchestrator", "orders-mcp", "mcp-feed", "ops"} {
		c := clients[id]
		if c.secret, err = randomSecret(); err != nil {
			return err
		}
		h, err := bcrypt.GenerateFromPassword([]byte(c.secret), cost)
		if err != nil {
			return err
		}
		c.cfg.ID, c.cfg.SecretHash = id, string(h)
		cfg.Clients = append(cfg.Clients, c.cfg)
	}
	if _, err := cfg.Validate(""); err != nil {
		return err
	}
	srv, err := server.Start(cfg, server.Options{Logger: logs})
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	fmt.Fprintf(o.Out, "mandate    listening on %s\n", srv.URL)

	feed := clients["mcp-feed"]
	discover := func(audience, public string) (*verifier.Verifier, error) {
		return verifier.Discover(ctx, verifier.Config{Issuer: srv.URL, Audience: audience, ClientID: "mcp-feed", ClientSecret: feed.secret,
			PublicURL: public, ResourceMetadataURL: verifier.ResourceMetadata{Resource: audience}.URL()})
	}

	// The downstream orders API.
	apiURL, stopAPI, err := serve(func(public string) (http.Handler, error) {
		v, err := discover(ordersAPI, public)
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("POST /orders/{id}/refund", v.Middleware(v.RequireScope("orders:refund")(http.HandlerFunc(refund))))
		return mux, nil
	})
	if err != nil {
		return err
	}
	defer stopAPI()
	fmt.Fprintf(o.Out, "orders-api listening on %s (audience %s)\n", apiURL, ordersAPI)

	// The Go MCP server: inventory.
	invURL, stopInv, err := startInventory(ctx, srv.URL, "mcp-feed", feed.secret, inventoryMCP, filepath.Join(repo, "examples", "mcp", "policies"), logs)
	if err != nil {
		return err
	}
	defer stopInv()
	fmt.Fprintf(o.Out, "inventory  MCP server (Go) on %s (audience %s)\n", invURL, inventoryMCP)

	// The TypeScript MCP server: orders.
	ordersURL, stopTS, err := startTS(ctx, o, repo, []string{
		"MANDATE_ISSUER=" + srv.URL, "MCP_FEED_ID=mcp-feed", "MCP_FEED_SECRET=" + feed.secret,
		"MCP_CLIENT_ID=orders-mcp", "MCP_CLIENT_SECRET=" + clients["orders-mcp"].secret, "MCP_SERVER_URI=" + ordersMCP,
		"MCP_POLICY_DIR=" + filepath.Join(repo, "examples", "mcp", "policies"),
		"ORDERS_API_URL=" + apiURL, "ORDERS_API_AUDIENCE=" + ordersAPI, "LISTEN=127.0.0.1:0",
	})
	if err != nil {
		return err
	}
	defer stopTS()
	fmt.Fprintf(o.Out, "orders     MCP server (TypeScript) on %s (audience %s)\n\n", ordersURL, ordersMCP)

	// The Python orchestrator tells the story.
	root, err := runPython(ctx, o, repo, []string{
		"MANDATE_ISSUER=" + srv.URL, "ORCH_ID=orchestrator", "ORCH_SECRET=" + clients["orchestrator"].secret,
		"ORDERS_MCP_URL=" + ordersURL, "ORDERS_MCP_URI=" + ordersMCP, "INVENTORY_MCP_URL=" + invURL, "INVENTORY_MCP_URI=" + inventoryMCP,
	})
	if err != nil {
		return err
	}

	// The whole tree, as an operator sees it.
	fmt.Fprintf(o.Out, "\n$ mandate lineage %s\n", root)
	bin, args := o.MandateBin, []string{"lineage", root}
	if bin == "" {
		bin, args = "go", append([]string{"run", "./cmd/mandate"}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = repo, o.Out, o.Out
	cmd.Env = append(os.Environ(), "MANDATE_SERVER="+srv.URL, "MANDATE_CLIENT_ID=ops", "MANDATE_CLIENT_SECRET="+clients["ops"].secret)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mandate lineage: %w", err)
	}
	return nil
}

// startInventory serves the Go MCP server, guarded, on a loopback port and
// returns its MCP endpoint's URL.
func startInventory(ctx context.Context, issuer, feedID, feedSecret, uri, policyDir string, logs *slog.Logger) (string, func(), error) {
	policies, err := policy.LoadDir(policyDir)
	if err != nil {
		return "", nil, err
	}
	u, stop, err := serve(func(public string) (http.Handler, error) {
		v, err := verifier.Discover(ctx, verifier.Config{Issuer: issuer, Audience: uri, ClientID: feedID, ClientSecret: feedSecret,
			PublicURL: public, ResourceMetadataURL: verifier.ResourceMetadata{Resource: uri}.URL()})
		if err != nil {
			return nil, err
		}
		g, err := mcpguard.New(v, mcpguard.Config{Server: uri, Policy: policies, Logger: logs})
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("/mcp", g.Protect(inventoryServer(), nil))
		md := g.Metadata(issuer, "tools:*")
		mux.Handle(verifier.ResourceMetadataPath(md.Resource), md.Handler())
		return mux, nil
	})
	if err != nil {
		return "", nil, err
	}
	return u + "/mcp", stop, nil
}

// runInventory is `go run ./examples/mcp inventory`: the Go MCP server
// alone, for the SDKs' interop tests. It reads MANDATE_ISSUER, MCP_FEED_ID,
// MCP_FEED_SECRET, MCP_SERVER_URI and MCP_POLICY_DIR, prints
// "listening <url>" when ready, logs denials to stderr, and runs until
// interrupted.
func runInventory(ctx context.Context, out io.Writer) error {
	env := map[string]string{}
	for _, k := range []string{"MANDATE_ISSUER", "MCP_FEED_ID", "MCP_FEED_SECRET", "MCP_SERVER_URI", "MCP_POLICY_DIR"} {
		if env[k] = os.Getenv(k); env[k] == "" {
			return fmt.Errorf("set %s", k)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logs := slog.New(slog.NewTextHandler(os.Stderr, nil))
	u, stopServer, err := startInventory(ctx, env["MANDATE_ISSUER"], env["MCP_FEED_ID"], env["MCP_FEED_SECRET"], env["MCP_SERVER_URI"], env["MCP_POLICY_DIR"], logs)
	if err != nil {
		return err
	}
	defer stopServer()
	fmt.Fprintln(out, "listening "+u)
	<-ctx.Done()
	return nil
}

// serve starts handler(publicURL) on a loopback port.
func serve(handler func(public string) (http.Handler, error)) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	public := "http://" + ln.Addr().String()
	h, err := handler(public)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go s.Serve(ln)
	return public, func() { s.Shutdown(context.Background()) }, nil
}

// refund is the orders API's refund: it answers who asked, for whom,
// through which agents — what the API sees of the chain.
func refund(w http.ResponseWriter, r *http.Request) {
	c, _ := verifier.FromContext(r.Context())
	var body struct {
		Amount json.Number `json:"amount"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"refunded": r.PathValue("id"), "amount": body.Amount,
		"subject": c.Subject, "holder": c.Holder, "actors": c.Actors, "depth": c.Depth})
}

// inventoryServer is the Go MCP server's tools.
func inventoryServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "inventory", Version: "1.0.0"}, nil)
	type checkIn struct {
		SKU string `json:"sku" jsonschema:"the product's stock-keeping unit"`
	}
	type reserveIn struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "check_stock", Description: "How many of a product are in stock"},
		func(_ context.Context, _ *mcp.CallToolRequest, in checkIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s: 12 in stock", in.SKU)}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "reserve_stock", Description: "Reserve a quantity of a product"},
		func(_ context.Context, _ *mcp.CallToolRequest, in reserveIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("reserved %d of %s", in.Qty, in.SKU)}}}, nil, nil
		})
	return s
}

// startTS runs the TypeScript MCP server and waits for its "listening URL"
// line; its logs go to the story's output, prefixed.
func startTS(ctx context.Context, o options, repo string, env []string) (string, func(), error) {
	dir := filepath.Join(repo, "examples", "mcp", "ts-server")
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		npm.Dir, npm.Stdout, npm.Stderr = dir, os.Stderr, os.Stderr
		if err := npm.Run(); err != nil {
			return "", nil, fmt.Errorf("npm ci in %s: %w", dir, err)
		}
	}
	cmd := exec.CommandContext(ctx, o.Node, "server.mjs")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	cmd.Stderr = prefixed(o.Out, "  [orders-mcp] ")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("node: %w", err)
	}
	stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
	lines := bufio.NewScanner(stdout)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if u, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
				ready <- u
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			stop()
			return "", nil, errors.New("the TypeScript MCP server exited before listening")
		}
		return u, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("the TypeScript MCP server did not start within 30 s")
	}
}

// runPython runs the orchestrator, copying its output, and returns the
// task's root jti (its last line, "root <jti>").
func runPython(ctx context.Context, o options, repo string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, o.Python, filepath.Join(repo, "examples", "mcp", "orchestrator.py"))
	cmd.Dir, cmd.Env = repo, append(os.Environ(), env...)
	cmd.Stderr = prefixed(o.Out, "  [orchestrator] ")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("python: %w", err)
	}
	var root string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		if j, ok := strings.CutPrefix(line, "root "); ok {
			root = j
			continue
		}
		fmt.Fprintln(o.Out, line)
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("the orchestrator failed: %w", err)
	}
	if root == "" {
		return "", errors.New("the orchestrator did not name the task's root")
	}
	return root, nil
}

// prefixed writes each line to w after prefix.
func prefixed(w io.Writer, prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			fmt.Fprintln(w, prefix+s.Text())
		}
	}()
	return pw
}

// lockedWriter serializes writes from the story's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
