// Package redisproc is the Redis/Valkey side of the test harness. It runs a
// private redis-server (or valkey-server) as a child process, for the tests
// that kill, freeze or restart their Valkey (the valkey, presence and eventbus
// adapters, the app's fault tests, the memory benchmarks) and for the chaos
// run; and it names the other servers tests use: the shared one at
// TEST_VALKEY_URL (SharedURL) and miniredis (Targets).
//
// A private server runs without persistence (a restart comes back empty) on a
// loopback port in a directory of its own; it is only ever signalled by its own
// PID, never by name, so the shared servers of the machine are never touched.
// internal/serverproc is the same for the service's own binary.
package redisproc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Environment the package reads (scripts/with-services.sh sets TEST_REDIS_SERVER
// and TEST_VALKEY_URL).
const (
	EnvServer    = "TEST_REDIS_SERVER"   // the server binary; default redis-server, then valkey-server, on PATH
	EnvCLI       = "TEST_REDIS_CLI"      // the CLI binary; default redis-cli, then valkey-cli, on PATH
	EnvSharedURL = "TEST_VALKEY_URL"     // the shared test server (SharedURL)
	EnvRequire   = "REQUIRE_INTEGRATION" // "1": a missing binary or server fails a test instead of skipping it
)

const (
	readyTimeout = 10 * time.Second // from the start until it answers INFO with its PID
	portRetry    = 5 * time.Second  // how long Start retries while the port is still held
)

// Binary returns the server binary: $TEST_REDIS_SERVER, or redis-server or
// valkey-server on PATH.
func Binary() (string, error) {
	return lookup(EnvServer, "redis-server", "valkey-server")
}

// CLI returns the command-line client: $TEST_REDIS_CLI, or redis-cli or
// valkey-cli on PATH.
func CLI() (string, error) {
	return lookup(EnvCLI, "redis-cli", "valkey-cli")
}

func lookup(env string, names ...string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s on PATH and %s unset", strings.Join(names, " or "), env)
}

// FreeAddr returns a loopback address whose port is free right now, and whose
// cluster bus port (port+10000) is free too.
func FreeAddr() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		bus.Close()
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	return "", errors.New("finding a free port: no free pair of port and cluster bus port")
}

// errPortHeld: another server answers on the address (not worth a retry).
var errPortHeld = errors.New("the port is held")

// Options say how to run the server.
type Options struct {
	Bin  string   // the server binary; "" is Binary()
	Addr string   // host:port to listen on; "" is FreeAddr()
	Dir  string   // its working directory (required: cluster nodes write nodes.conf there)
	Args []string // further arguments, e.g. "--cluster-enabled", "yes"
	// Output receives the server's stdout and stderr; nil appends them to
	// redis-server.log in Dir, for Output and the errors.
	Output io.Writer
	// NewProcessGroup puts the server in a process group of its own, so that
	// a Ctrl-C to the parent's terminal does not reach it.
	NewProcessGroup bool
}

// Server is one private server. Its methods may be called from any goroutine.
type Server struct {
	opts Options
	log  string // the log file in Dir; "" when opts.Output is set

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil when not running
	done chan struct{} // closed when cmd's process was reaped
}

// New prepares a server without starting it: its address is fixed from now on.
func New(o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("redisproc: Options.Dir is required")
	}
	if o.Bin == "" {
		bin, err := Binary()
		if err != nil {
			return nil, err
		}
		o.Bin = bin
	}
	if o.Addr == "" {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		o.Addr = addr
	}
	s := &Server{opts: o}
	if o.Output == nil {
		s.log = filepath.Join(o.Dir, "redis-server.log")
	}
	return s, nil
}

// Start prepares a server (New) and starts it. When Options.Addr is empty and
// the free port it picked was taken before the server bound it, it tries
// another one.
func Start(o Options) (*Server, error) {
	var err error
	for range 3 {
		var s *Server
		if s, err = New(o); err != nil {
			return nil, err
		}
		if err = s.start(0); err == nil {
			return s, nil
		}
		if o.Addr != "" {
			break
		}
	}
	return nil, err
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.opts.Addr }

// URL is the redis:// URL of the server, as VALKEY_URL takes it.
func (s *Server) URL() string { return "redis://" + s.opts.Addr }

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.opts.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Start starts the server, empty, and waits until it answers INFO with its
// own PID (so a process that took the port in between is never mistaken for
// it). It retries for a few seconds when the server exits at start, as it may
// while the port lingers just after Kill, but not while another server
// answers there. Starting a running server is an error.
func (s *Server) Start() error { return s.start(portRetry) }

func (s *Server) start(retry time.Duration) error {
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return fmt.Errorf("%s on %s is already running", s.opts.Bin, s.opts.Addr)
	}
	deadline := time.Now().Add(retry)
	for {
		err := s.launch()
		if err == nil || errors.Is(err, errPortHeld) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart kills the server (when it runs) and starts it again, empty, on the
// same address.
func (s *Server) Restart() error {
	s.Kill()
	return s.Start()
}

func (s *Server) launch() error {
	host, port, err := net.SplitHostPort(s.opts.Addr)
	if err != nil {
		return fmt.Errorf("redisproc: address %q: %w", s.opts.Addr, err)
	}
	args := append([]string{"--port", port, "--bind", host, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no", "--dir", s.opts.Dir}, s.opts.Args...)
	cmd := exec.Command(s.opts.Bin, args...)
	cmd.Dir = s.opts.Dir
	cmd.Stdout, cmd.Stderr = s.opts.Output, s.opts.Output
	if s.log != "" {
		f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("redisproc: opening the log: %w", err)
		}
		defer f.Close() // the child holds its own descriptor
		cmd.Stdout, cmd.Stderr = f, f
	}
	if s.opts.NewProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.opts.Bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // the only Wait: signals go to a PID not yet reaped
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			if pid, err := serverPID(s.opts.Addr); err == nil {
				return fmt.Errorf("%s on %s: %w by pid %d", s.opts.Bin, s.opts.Addr, errPortHeld, pid)
			}
			return fmt.Errorf("%s on %s exited at start%s", s.opts.Bin, s.opts.Addr, s.tail())
		default:
		}
		pid, err := serverPID(s.opts.Addr)
		switch {
		case err == nil && pid == cmd.Process.Pid:
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		case err == nil: // another process answers on the port
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("%s on %s: %w by pid %d", s.opts.Bin, s.opts.Addr, errPortHeld, pid)
		case time.Now().After(deadline):
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("%s on %s not ready within %v: %w%s", s.opts.Bin, s.opts.Addr, readyTimeout, err, s.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail is the last lines of the log file, for an error.
func (s *Server) tail() string {
	out := s.Output()
	if out == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return ":\n" + strings.Join(lines[max(len(lines)-10, 0):], "\n")
}

// serverPID asks the server on addr for its process id (INFO server).
func serverPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return 0, err
	}
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if _, rest, ok := strings.Cut(string(buf), "process_id:"); ok {
			if line, _, ok := strings.Cut(rest, "\r\n"); ok {
				return strconv.Atoi(line)
			}
		}
		if err != nil {
			return 0, err
		}
	}
}

// running returns the current process and its reaper's channel, or nil.
func (s *Server) running() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.done
}

// Pid is the running server's process id, 0 when it does not run.
func (s *Server) Pid() int {
	if cmd, _ := s.running(); cmd != nil {
		return cmd.Process.Pid
	}
	return 0
}

// Process is the running server's process, nil when it does not run.
func (s *Server) Process() *os.Process {
	if cmd, _ := s.running(); cmd != nil {
		return cmd.Process
	}
	return nil
}

// Done is closed when the running server's process has exited (a closed
// channel when it does not run).
func (s *Server) Done() <-chan struct{} {
	if _, done := s.running(); done != nil {
		return done
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

// Signal sends sig to the server's PID.
func (s *Server) Signal(sig syscall.Signal) error {
	cmd, _ := s.running()
	if cmd == nil {
		return fmt.Errorf("signal %v: %s on %s is not running", sig, s.opts.Bin, s.opts.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, cmd.Process.Pid, err)
	}
	return nil
}

// Freeze stops the process (SIGSTOP): it keeps its connections and accepts
// new ones, but answers nothing, as a hung server does.
func (s *Server) Freeze() error { return s.Signal(syscall.SIGSTOP) }

// Thaw continues a frozen server (SIGCONT).
func (s *Server) Thaw() error { return s.Signal(syscall.SIGCONT) }

// Kill kills the server by its PID (continuing it first: a stopped process
// must run to die) and waits until it was reaped. It does nothing when the
// server does not run.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Kill()
	<-done
}

// Output is what the server printed, when Options.Output was nil.
func (s *Server) Output() string {
	if s.log == "" {
		return ""
	}
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// ------------------------------------------------------------ for tests --

// missing skips t, or fails it under REQUIRE_INTEGRATION=1.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("REQUIRE_INTEGRATION=1 but "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// SharedURL returns the URL of the shared test server (TEST_VALKEY_URL; tests
// use it under a key prefix of their own and never restart it). Without it the
// test is skipped, or fails under REQUIRE_INTEGRATION=1.
func SharedURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvSharedURL)
	if u == "" {
		missing(t, "%s is not set (run the tests through scripts/with-services.sh)", EnvSharedURL)
	}
	return u
}

// Target is a server a Valkey-backed adapter is tested against.
type Target struct {
	Name string
	URL  func(t *testing.T) string // the URL of a server for t (it may start one)
}

// Targets are the servers the contract of a Valkey-backed adapter runs
// against: a fresh miniredis per test, and the shared server (SharedURL).
func Targets() []Target {
	return []Target{
		{"miniredis", func(t *testing.T) string { return "redis://" + miniredis.RunT(t).Addr() }},
		{"server", func(t *testing.T) string { return SharedURL(t) }},
	}
}

// NewForTest prepares a server of t (New) in a temporary directory of t,
// killed when t ends; o.Dir may be left empty. Without a server binary the
// test is skipped, or fails under REQUIRE_INTEGRATION=1.
func NewForTest(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Bin == "" {
		bin, err := Binary()
		if err != nil {
			missing(t, "%v", err)
		}
		o.Bin = bin
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartForTest starts a server of t on a free loopback port (NewForTest,
// then Start), with args added to its command line.
func StartForTest(t testing.TB, args ...string) *Server {
	t.Helper()
	var err error
	for range 3 { // the free port may be taken before the server binds it
		s := NewForTest(t, Options{Args: args})
		if err = s.start(0); err == nil {
			return s
		}
	}
	t.Fatal(err)
	return nil
}
