// Package serverproc runs the real server binary (./app/cmd/server) as a
// child process for the tests that talk to it over HTTP: the e2e suite, the
// load generator's smoke test and the HTTP benchmark's test. It builds the
// binary, starts it on a free loopback port with only the configuration the
// test gives (the server's variables are removed from the inherited
// environment), waits until GET /readyz answers 200, and stops it with SIGTERM
// when the test ends, failing the test unless it exits 0.
package serverproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/app/config"
)

const (
	modulePath = "github.com/halobestie/mitra-availability"
	serverPkg  = "./app/cmd/server"

	// ReadyTimeout bounds the wait for GET /readyz after the start.
	ReadyTimeout = 30 * time.Second
	// StopTimeout bounds the wait for the exit after SIGTERM or SIGKILL.
	StopTimeout = 10 * time.Second
)

// Build builds ./app/cmd/server into dir, with -race when race is true, and
// returns the binary's path.
func Build(dir string, race bool) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "server")
	args := []string{"build"}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "-o", bin, serverPkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// BuildForTest builds the binary into a temporary directory of t (without
// -race) and returns its path; a failure fails the test.
func BuildForTest(t testing.TB) string {
	t.Helper()
	bin, err := Build(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RaceEnabled reports whether the running binary was built with -race.
func RaceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// RepoRoot walks up from the working directory to the go.mod of this module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// FreeAddr returns a loopback address with a port nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
}

// Env is the inherited environment without the variables the server reads
// (config.Vars), plus vars.
func Env(vars map[string]string) []string {
	drop := map[string]bool{}
	for _, k := range config.Vars() {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// Process is one running server.
type Process struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string

	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	waitErr error
	killed  atomic.Bool // set by Kill: the process is meant to be dead
}

// Start starts bin with vars (and HTTP_ADDR on a free port, unless vars sets
// it) on top of Env, and waits until GET /readyz answers 200. When the test
// ends the process is stopped with SIGTERM and must exit 0 within
// StopTimeout; its output is logged when the test failed.
func Start(t testing.TB, bin string, vars map[string]string) *Process {
	t.Helper()
	all := map[string]string{}
	for k, v := range vars {
		all[k] = v
	}
	if all["HTTP_ADDR"] == "" {
		all["HTTP_ADDR"] = FreeAddr(t)
	}
	p := &Process{
		URL:  "http://" + all["HTTP_ADDR"],
		out:  &syncBuffer{},
		done: make(chan struct{}),
	}
	p.cmd = exec.Command(bin)
	p.cmd.Env = Env(all)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	// Cleanups run last-in first-out: stop, then show the output on failure.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server output:\n%s", p.out.String())
		}
	})
	t.Cleanup(func() { p.stop(t) })
	p.waitReady(t)
	return p
}

// waitReady polls GET /readyz until it answers 200.
func (p *Process) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	client := &http.Client{Timeout: time.Second}
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("server exited before it was ready: %v (its output follows)", p.waitErr)
		default:
		}
		resp, err := client.Get(p.URL + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET /readyz did not answer 200 within %s (last: %s; the server's output follows)", ReadyTimeout, last)
}

// stop sends SIGTERM and asserts that the server exits 0 within StopTimeout.
func (p *Process) stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		if p.killed.Load() {
			return // killed on purpose: nothing to stop
		}
		if !t.Failed() { // a failed start has said so already
			t.Errorf("server exited before the test ended: %v", p.waitErr)
		}
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		if p.waitErr != nil {
			t.Errorf("server did not exit 0 after SIGTERM: %v", p.waitErr)
		}
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("server did not exit within %s of SIGTERM", StopTimeout)
	}
}

// Kill sends SIGKILL (no graceful shutdown) and waits until the process is
// gone; the test's cleanup then leaves it alone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("kill: the server had already exited: %v", p.waitErr)
	default:
	}
	p.killed.Store(true)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		t.Fatalf("the server did not die within %s of SIGKILL", StopTimeout)
	}
	var exit *exec.ExitError
	if !errors.As(p.waitErr, &exit) {
		t.Fatalf("after SIGKILL the server exited with %v, want death by signal", p.waitErr)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("after SIGKILL the server exited with %v, want death by SIGKILL", p.waitErr)
	}
}

// Pid is the process id of the server.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns what the server has written to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Run runs bin with args and vars (on top of Env) to completion within
// timeout, and returns its exit code and output.
func Run(t testing.TB, bin string, timeout time.Duration, vars map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Env(vars)
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("server %v did not exit within %s; output:\n%s", args, timeout, out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	default:
		t.Fatalf("run server %v: %v", args, err)
		return 0, ""
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a process's
// stdout and stderr copiers and the reads of a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
