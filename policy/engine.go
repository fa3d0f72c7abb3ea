package policy

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Engine serves the policy set of a directory and replaces it, atomically,
// when the directory changes or Reload is called. A set that fails to load is
// rejected and the previous one keeps serving. It is safe for concurrent use.
type Engine struct {
	dir      string
	log      *slog.Logger
	cur      atomic.Pointer[Set]
	reload   sync.Mutex
	onReload func(policies int, err error) // guarded by reload
}

// OnReload registers f to hear every reload's outcome (the number of
// policies now served, or the error that kept the previous set): for the
// audit trail.
func (e *Engine) OnReload(f func(policies int, err error)) {
	e.reload.Lock()
	e.onReload = f
	e.reload.Unlock()
}

// NewEngine loads dir; an error (naming file, line and column for a parse
// error) means there is nothing to serve and the caller should stop.
func NewEngine(dir string, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := LoadDir(dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{dir: dir, log: log}
	e.cur.Store(s)
	log.Info("policies loaded", slog.String("dir", dir), slog.Int("policies", len(s.positions)))
	return e, nil
}

// Dir is the directory the engine serves.
func (e *Engine) Dir() string { return e.dir }

// Current returns the set being served.
func (e *Engine) Current() *Set { return e.cur.Load() }

// Decide evaluates a token request against the current set.
func (e *Engine) Decide(ctx context.Context, r Request) (Decision, error) {
	return e.cur.Load().Decide(ctx, r)
}

// AuthorizeCall evaluates a call against the current set.
func (e *Engine) AuthorizeCall(r CallRequest) Decision { return e.cur.Load().AuthorizeCall(r) }

// AuthorizeMCP decides an MCP request with the current set.
func (e *Engine) AuthorizeMCP(r MCPRequest) Decision { return e.cur.Load().AuthorizeMCP(r) }

// Reload loads the directory again and, if it loads, serves it from now on.
// On error the previous set keeps serving and the error says why.
func (e *Engine) Reload() error {
	e.reload.Lock()
	defer e.reload.Unlock()
	s, err := LoadDir(e.dir)
	if err != nil {
		e.log.Error("policy reload rejected; the previous policies keep serving", slog.String("error", err.Error()))
		if e.onReload != nil {
			e.onReload(len(e.cur.Load().positions), err)
		}
		return err
	}
	e.cur.Store(s)
	e.log.Info("policies reloaded", slog.String("dir", e.dir), slog.Int("policies", len(s.positions)))
	if e.onReload != nil {
		e.onReload(len(s.positions), nil)
	}
	return nil
}

// Watch reloads whenever anything in the directory changes, once it has been
// quiet for 200 ms (so a multi-file update is loaded whole), until ctx ends: not only *.cedar names, since
// deployment tools such as Kubernetes ConfigMap volumes swap a hidden
// symlinked directory under unchanged file names. onReload, if set, receives
// each reload's result.
func (e *Engine) Watch(ctx context.Context, onReload func(error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("policy: watch %s: %w", e.dir, err)
	}
	if err := w.Add(e.dir); err != nil {
		w.Close()
		return fmt.Errorf("policy: watch %s: %w", e.dir, err)
	}
	go func() {
		defer w.Close()
		const quiet = 200 * time.Millisecond
		timer := time.NewTimer(quiet)
		timer.Stop()
		defer timer.Stop()
		var debounce <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				timer.Reset(quiet) // every event restarts the quiet period
				debounce = timer.C
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				e.log.Warn("policy watch", slog.String("error", err.Error()))
			case <-debounce:
				debounce = nil
				err := e.Reload()
				if onReload != nil {
					onReload(err)
				}
			}
		}
	}()
	return nil
}
