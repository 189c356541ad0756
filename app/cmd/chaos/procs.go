package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/halobestie/mitra-availability/client"
	"github.com/halobestie/mitra-availability/internal/redisproc"
)

// proc is one child process: a redis-server or a server instance. Its
// output goes to a log file; it is stopped by PID, never by name.
type proc struct {
	name    string
	process *os.Process
	log     string
	done    <-chan struct{}
	err     error // the exit status of a server instance, once done is closed
}

// openLog opens the log file a child's output is appended to.
func openLog(name, logPath string) (*os.File, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: opening its log: %w", name, err)
	}
	return f, nil
}

// startProc starts bin with args and env (added to a clean environment
// with PATH and HOME only), its output appended to logPath.
func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	f, err := openLog(name, logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	done := make(chan struct{})
	p := &proc{name: name, process: cmd.Process, log: logPath, done: done}
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	return p, nil
}

func (p *proc) signal(sig syscall.Signal) error {
	if err := p.process.Signal(sig); err != nil {
		return fmt.Errorf("%s: sending %v: %w", p.name, sig, err)
	}
	return nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL (continuing a stopped process first) and waits for the exit.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for the exit, then kills. It
// returns the exit error (nil for a clean exit 0).
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("%s had already exited: %v", p.name, p.err)
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: exit after SIGTERM: %w", p.name, p.err)
		}
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startRedis starts a redis-server without persistence on addr (so a
// restart comes back empty; internal/redisproc), and waits until it answers.
func startRedis(bin, addr, dir, logPath string) (*proc, error) {
	f, err := openLog("redis-server", logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	srv, err := redisproc.Start(redisproc.Options{Bin: bin, Addr: addr, Dir: dir, Output: f, NewProcessGroup: true})
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w\n%s", err, (&proc{log: logPath}).tail(10))
	}
	return &proc{name: "redis-server", process: srv.Process(), log: logPath, done: srv.Done()}, nil
}

// readiness is what GET /readyz answered: its status and body.
type readiness struct {
	status int
	client.Ready
}

var probe = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}

func readyz(ctx context.Context, base string) (readiness, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return readiness{}, err
	}
	resp, err := probe.Do(req)
	if err != nil {
		return readiness{}, err
	}
	defer resp.Body.Close()
	r := readiness{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r.Ready); err != nil {
		return r, fmt.Errorf("GET /readyz: decoding: %w", err)
	}
	return r, nil
}

// createDatabase creates a fresh database next to the one adminDSN names and
// returns its DSN and a function that drops it.
func createDatabase(ctx context.Context, adminDSN, name string) (string, func(), error) {
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("the database URL %q is not a postgres:// URL", adminDSN)
	}
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("creating database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
