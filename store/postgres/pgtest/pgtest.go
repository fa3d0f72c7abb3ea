// Package pgtest starts a throw-away PostgreSQL for tests: a cluster made by
// initdb in a temporary directory, served by the machine's own postgres
// binary on a unix socket in that directory, and deleted when the tests end.
// No server is assumed to be running.
//
// A test package starts one cluster for all its tests (Main, from
// TestMain) and gives each test its own database (NewDatabase), which costs
// a CREATE DATABASE, not a cluster. A test that stops the server, or that
// needs a primary and a streaming standby to fail over to, starts clusters
// of its own (Own, OwnStandby), which needs no Main. Without PostgreSQL's
// binaries the package's tests skip, saying so in one line; with
// MANDATE_TEST_POSTGRES=required (set by .ci/run) a missing PostgreSQL is a
// failure instead.
//
// Run as root, initdb and postgres refuse to start, so the cluster runs as
// the unprivileged user "postgres", which owns its directory.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvRequired names the environment variable that, set to "required",
// turns a missing PostgreSQL from a skip into a failure.
const EnvRequired = "MANDATE_TEST_POSTGRES"

// ErrUnavailable reports that PostgreSQL's server binaries were not found.
var ErrUnavailable = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// Required reports whether the environment demands PostgreSQL tests run.
func Required() bool { return os.Getenv(EnvRequired) == "required" }

// Superuser is the cluster's superuser, trusted on the socket.
const Superuser = "postgres"

// Cluster is a running throw-away PostgreSQL.
type Cluster struct {
	dir  string // the temporary directory: data/, the socket, postgres.log
	bin  string // the directory of initdb and postgres
	cred *syscall.Credential
	n    atomic.Int64

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// findBin returns the directory holding initdb and postgres: PATH first,
// then Debian's /usr/lib/postgresql/<version>/bin.
func findBin() (string, error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		dir := filepath.Dir(initdb)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
		if p, err := exec.LookPath("postgres"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil && filepath.Dir(real) == dir {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", ErrUnavailable
}

// Start makes and starts a cluster. It returns ErrUnavailable (wrapped)
// when PostgreSQL is not installed; any other error means it is, but would
// not start.
func Start(ctx context.Context) (*Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	out, err := c.run(ctx, filepath.Join(c.bin, "initdb"), "-D", c.data(), "-U", Superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err != nil {
		c.removeDir()
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	// The superuser is trusted on the socket, for sessions and for
	// replication (a standby's base backup and WAL stream: StartStandby);
	// every other role gives its password, so tests can check what a wrong
	// one does.
	hba := "local all " + Superuser + " trust\nlocal replication " + Superuser + " trust\nlocal all all scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(c.data(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		c.removeDir()
		return nil, err
	}
	return c, nil
}

// newCluster finds the binaries and makes the cluster's directory, owned
// by the user the cluster runs as; nothing is in it yet.
func newCluster() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, the cluster needs the unprivileged user postgres: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	// A short path: the socket's must fit in 107 bytes.
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	removeStale(base)
	if c.dir, err = os.MkdirTemp(base, "mandate-pg-"); err != nil {
		return nil, err
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, uid, gid); err != nil {
			c.removeDir()
			return nil, err
		}
	}
	return c, nil
}

// StartStandby makes and starts a streaming standby of primary: a base
// backup by pg_basebackup -R (so the copy follows primary's WAL stream over
// its socket), started as a hot standby on a directory and socket of its
// own, and returned once primary sees it streaming. The standby is
// asynchronous until primary.RequireSynchronous; Promote makes it a primary.
// Its server, like primary's, stops when this process dies.
func StartStandby(ctx context.Context, primary *Cluster) (*Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	out, err := c.run(ctx, filepath.Join(c.bin, "pg_basebackup"), "-D", c.data(), "-h", primary.dir, "-U", Superuser,
		"-R", "-X", "stream", "-c", "fast", "--no-sync")
	if err != nil {
		c.removeDir()
		return nil, fmt.Errorf("pg_basebackup: %w: %s", err, out)
	}
	if err := c.start(ctx); err != nil {
		c.removeDir()
		return nil, err
	}
	if err := primary.waitReplication(ctx, "state = 'streaming'"); err != nil {
		c.Close()
		return nil, fmt.Errorf("the standby does not stream: %w: %s", err, c.LogTail(20))
	}
	return c, nil
}

// RequireSynchronous makes c's commits wait for a standby
// (synchronous_standby_names = '*', synchronous_commit on: a commit returns
// once a standby has flushed it) and returns once a standby is synchronous.
// From then on a commit c acknowledges is on the standby too, and none
// returns while no standby is connected. Call it once the standby is made:
// a base backup taken afterwards would carry the setting along, and the
// standby, once promoted, would wait for a standby of its own.
func (c *Cluster) RequireSynchronous(ctx context.Context) error {
	for _, sql := range []string{"ALTER SYSTEM SET synchronous_standby_names = '*'", "ALTER SYSTEM SET synchronous_commit = on", "SELECT pg_reload_conf()"} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			return err
		}
	}
	return c.waitReplication(ctx, "sync_state = 'sync'")
}

// waitReplication waits until a standby connected to c meets cond (SQL
// over pg_stat_replication), for up to 30s.
func (c *Cluster) waitReplication(ctx context.Context, cond string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		n := 0
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE "+cond).Scan(&n)
			conn.Close(ctx)
		}
		if n > 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no standby with %s in 30s (last error: %v)", cond, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Promote makes a standby a primary (pg_promote) and returns once it
// accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var done bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&done); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !done {
		return fmt.Errorf("promote: not promoted within 60s: %s", c.LogTail(20))
	}
	return nil
}

// PauseWALReceiver stops a standby's WAL receiver (SIGSTOP), so the
// standby receives nothing more, until resume is called (SIGCONT): on a
// primary that requires it synchronous, commits wait meanwhile; on one
// that does not, they go on without the standby. Call resume before
// Promote.
func (c *Cluster) PauseWALReceiver(ctx context.Context) (resume func(), err error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_wal_receiver").Scan(&pid); err != nil {
		return nil, fmt.Errorf("the standby's WAL receiver: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("stop the WAL receiver: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }, nil
}

// Crash stops the server as a crash would (immediate shutdown: every
// session cut at once, no checkpoint; what was committed is in the WAL),
// and leaves it stopped: Resume would start it again, recovering.
func (c *Cluster) Crash() { c.stop(syscall.SIGQUIT) }

// removeStale deletes the directories of clusters whose test process died
// (its server, told by the parent-death signal, stopped and removed its
// postmaster.pid), once they are ten minutes old: a cluster still being
// made has no postmaster.pid either, but is younger.
func removeStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "mandate-pg-*"))
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < 10*time.Minute {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
			_ = os.RemoveAll(dir)
		}
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// Dir is the cluster's directory; the socket is in it.
func (c *Cluster) Dir() string { return c.dir }

// command is name with args, run as the cluster's user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := c.command(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// start runs postgres on the cluster's data and waits until it answers.
// The server gets SIGQUIT (immediate shutdown) if this process dies, so a
// crashed test run leaves no server behind.
func (c *Cluster) start(ctx context.Context) error {
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := c.command(context.Background(), filepath.Join(c.bin, "postgres"), "-D", c.data(),
		"-k", c.dir, "-c", "listen_addresses=", "-c", "max_connections=300", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning",
		// Tests may ask when a row's transaction committed
		// (pg_xact_commit_timestamp), to check the order of commits.
		"-c", "track_commit_timestamp=on")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	logFile.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("postgres exited at start: %s", c.LogTail(20))
		default:
		}
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop(syscall.SIGQUIT)
			return fmt.Errorf("postgres did not answer in 30s: %v: %s", err, c.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// LogTail returns the last n lines of the server's log.
func (c *Cluster) LogTail(n int) string {
	raw, _ := os.ReadFile(c.logPath())
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop signals the server (SIGINT: fast shutdown; SIGQUIT: immediate) and
// waits for it, killing it after 30s.
func (c *Cluster) stop(sig syscall.Signal) {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server (fast shutdown: connections are cut, committed
// data kept) and starts it again on the same data.
func (c *Cluster) Restart(ctx context.Context) error {
	c.stop(syscall.SIGINT)
	return c.start(ctx)
}

// Stop stops the server (fast shutdown: connections are cut, committed data
// kept, the socket removed), so tests see what clients of a database that
// went away see; Resume starts it again. Stopping a stopped cluster does
// nothing.
func (c *Cluster) Stop() { c.stop(syscall.SIGINT) }

// Resume starts a stopped cluster's server again on the same data and
// waits until it answers; a running one is left as it is.
func (c *Cluster) Resume(ctx context.Context) error {
	if c.Running() {
		return nil
	}
	return c.start(ctx)
}

// Running reports whether the cluster's server is running (started and not
// stopped).
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}

// Close stops the server and deletes the cluster.
func (c *Cluster) Close() {
	c.stop(syscall.SIGINT)
	c.removeDir()
}

func (c *Cluster) removeDir() { _ = os.RemoveAll(c.dir) }

// DSN is the key=value DSN of database as the superuser, over the socket.
func (c *Cluster) DSN(database string) string {
	return fmt.Sprintf("host=%s user=%s dbname=%s sslmode=disable", c.dir, Superuser, database)
}

// Exec runs sql with args as the superuser in database.
func (c *Cluster) Exec(ctx context.Context, database, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.DSN(database))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDatabase creates a new, empty database named after hint (made safe
// and unique) and returns its name.
func (c *Cluster) CreateDatabase(ctx context.Context, hint string) (string, error) {
	name := fmt.Sprintf("t%d_%s", c.n.Add(1), unsafeName.ReplaceAllString(strings.ToLower(hint), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	if err := c.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// NewDatabase creates a database for t and returns its DSN.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := c.CreateDatabase(ctx, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return c.DSN(name)
}

// shared is the cluster Main started for the package's tests.
var shared *Cluster

// Main runs a test package's tests with one cluster for all of them:
// call it from TestMain. Without PostgreSQL it prints one line and runs
// the tests, which skip (Need); with MANDATE_TEST_POSTGRES=required it
// fails instead. A cluster that does not start is a failure either way.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := Start(ctx)
	cancel()
	switch {
	case errors.Is(err, ErrUnavailable) && Required():
		fmt.Fprintf(os.Stderr, "FAIL: %v, and %s=required: install PostgreSQL's server (Debian: postgresql-15)\n", err, EnvRequired)
		return 1
	case errors.Is(err, ErrUnavailable):
		fmt.Fprintf(os.Stderr, "SKIP: every PostgreSQL test of this package: %v (%s=required makes this a failure)\n", err, EnvRequired)
		return m.Run()
	case err != nil:
		fmt.Fprintf(os.Stderr, "FAIL: a throw-away PostgreSQL would not start: %v\n", err)
		return 1
	}
	shared = c
	defer c.Close()
	return m.Run()
}

// Need returns the cluster Main started, skipping t when there is none.
func Need(t testing.TB) *Cluster {
	t.Helper()
	if shared == nil {
		if Required() {
			t.Fatalf("no PostgreSQL, and %s=required", EnvRequired)
		}
		t.Skip("no PostgreSQL: " + ErrUnavailable.Error())
	}
	return shared
}

// Own starts a cluster for t alone, which t may stop and resume without
// disturbing the package's other tests, and deletes it when t ends. It
// needs no Main: without PostgreSQL's binaries t is skipped (failed with
// MANDATE_TEST_POSTGRES=required), as Need does.
func Own(t testing.TB) *Cluster {
	t.Helper()
	needBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// OwnStandby starts a streaming standby of primary for t (StartStandby)
// and deletes it when t ends.
func OwnStandby(t testing.TB, primary *Cluster) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartStandby(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// needBinaries skips t (fails it, when required) unless PostgreSQL's
// binaries are installed.
func needBinaries(t testing.TB) {
	t.Helper()
	if shared != nil {
		return
	}
	if _, err := findBin(); err != nil {
		if Required() {
			t.Fatalf("%v, and %s=required: install PostgreSQL's server (Debian: postgresql-15)", err, EnvRequired)
		}
		t.Skipf("no PostgreSQL: %v (%s=required makes this a failure)", err, EnvRequired)
	}
}
