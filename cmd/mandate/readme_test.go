package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkBlock is a fenced block of the README marked to be run by
// TestReadmeWalkThrough: the configuration, the server command, and the
// shell steps, in the order the README gives them.
var walkBlock = regexp.MustCompile("(?s)<!-- walk-through(: (config|server))? -->\n```[a-z]*\n(.*?)```")

// readmeAddr is the address the README's configuration and commands use.
const readmeAddr = "127.0.0.1:8080"

// TestReadmeWalkThrough runs the README as a newcomer would: it writes the
// configuration it shows, starts `mandate serve` with it, and runs every
// marked shell step in one bash session (curl, jq and the mandate CLI),
// in order, against that server. Only the address changes (a free port
// instead of 8080). So the README cannot drift from the product: a step that
// fails or prints something else fails here.
func TestReadmeWalkThrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the README walk-through needs %s", tool)
			}
			t.Skipf("the README walk-through needs %s (CI fails without it)", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var config, serve string
	var steps []string
	for _, m := range walkBlock.FindAllStringSubmatch(string(readme), -1) {
		switch m[2] {
		case "config":
			config = m[3]
		case "server":
			serve = strings.TrimSpace(m[3])
		default:
			steps = append(steps, m[3])
		}
	}
	if config == "" || serve == "" || len(steps) < 2 {
		t.Fatalf("README: config %t, server %t, %d steps: the walk-through markers are missing", config != "", serve != "", len(steps))
	}
	dir := t.TempDir()
	// The README's address, taken from the system: serve binds a free port
	// and derives its issuer from it.
	config = strings.Replace(config, "listen: "+readmeAddr, "listen: 127.0.0.1:0", 1)
	config = regexp.MustCompile(`(?m)^issuer: .*\n`).ReplaceAllString(config, "")
	if err := os.WriteFile(filepath.Join(dir, "mandate.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// `mandate` on PATH is this test binary acting as the command (TestMain).
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o700); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", testChildEnv, self)
	if err := os.WriteFile(filepath.Join(bin, "mandate"), []byte(wrapper), 0o700); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MANDATE_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	srv := exec.Command("bash", "-c", "exec "+serve)
	srv.Dir, srv.Env = dir, env
	log := &childLog{addr: make(chan string, 1)}
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	}()
	var addr string
	select {
	case addr = <-log.addr:
	case <-exited:
		t.Fatalf("%s exited:\n%s", serve, log.tail())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start:\n%s", serve, log.tail())
	}

	script := "set -euo pipefail\n" + strings.ReplaceAll(strings.Join(steps, "\n"), readmeAddr, addr)
	run := exec.Command("bash", "-c", script)
	run.Dir, run.Env = dir, env
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Run(); err != nil {
		t.Fatalf("the README's steps failed (%v):\n%s\nserver log:\n%s", err, out.String(), log.tail())
	}
	// What the README says each step shows.
	for _, want := range []string{
		"http://" + addr + "/oauth2/token",            // discovery
		`"active": true`, `"client_id": "researcher"`, // introspection of the child
		`"scope": "db:read:orders"`,              // narrowed
		`"error":"invalid_scope"`,                // widening refused
		`{"active":false}`,                       // the task revoked
		"revoked-by-ancestor", "exit 1: refused", // the CLI agrees
		"revocation checked: not revoked",     // inspect online
		"1 token(s) made unusable",            // an operator's revocation
		`reason="walk-through: task aborted"`, // ...in the audit trail
		"audit trail intact",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, out.String())
		}
	}
}
