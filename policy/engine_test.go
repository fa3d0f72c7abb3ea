package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mandate-auth/mandate/policy"
)

const (
	allowMint = `@id("mint") permit (principal, action == Action::"mint", resource);`
	allowAll  = `@id("all") permit (principal, action, resource);`
	broken    = `@id("broken") permit (principal, action resource);`
)

func writePolicy(t *testing.T, dir, src string) {
	t.Helper()
	// Write then rename, as editors and deploy tools do, so no reader sees half a file.
	tmp := filepath.Join(dir, ".tmp-"+time.Now().Format("150405.000000000"))
	if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "main.cedar")); err != nil {
		t.Fatal(err)
	}
}

func allows(e *policy.Engine, a policy.Action) bool {
	d, _ := e.Decide(context.Background(), policy.Request{Principal: "a", Action: a, Resource: "a"})
	return d.Allow
}

// TestReloadNeverServesABrokenSet: good → broken → good, with readers
// deciding all along; every decision comes from a whole, valid set.
func TestReloadNeverServesABrokenSet(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, allowMint)
	e, err := policy.NewEngine(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d, _ := e.Decide(context.Background(), policy.Request{Principal: "a", Action: policy.ActionMint, Resource: "a"}); !d.Allow {
					t.Error("a reader saw no valid policy set")
					return
				}
			}
		}()
	}

	writePolicy(t, dir, broken)
	if err := e.Reload(); err == nil {
		t.Fatal("a broken set was accepted")
	}
	if !allows(e, policy.ActionMint) || allows(e, policy.ActionDelegate) {
		t.Fatal("the previous set stopped serving after a broken reload")
	}
	writePolicy(t, dir, allowAll)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if !allows(e, policy.ActionDelegate) {
		t.Fatal("the good set did not take over")
	}
	close(stop)
	wg.Wait()
}

func TestWatchReloadsOnFileChange(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, allowMint)
	e, err := policy.NewEngine(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := make(chan error, 8)
	if err := e.Watch(ctx, func(err error) { reloads <- err }); err != nil {
		t.Fatal(err)
	}
	next := func() error {
		select {
		case err := <-reloads:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload after a file change")
			return nil
		}
	}
	writePolicy(t, dir, broken)
	if err := next(); err == nil || !allows(e, policy.ActionMint) {
		t.Fatalf("broken file: reload err %v", err)
	}
	writePolicy(t, dir, allowAll)
	if err := next(); err != nil || !allows(e, policy.ActionDelegate) {
		t.Fatalf("fixed file: reload err %v", err)
	}
}
