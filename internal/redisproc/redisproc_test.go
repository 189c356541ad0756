package redisproc_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/internal/redisproc"
)

// command sends one command in RESP and returns the first line of the answer.
func command(addr string, timeout time.Duration, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(req)); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "$") && line != "$-1" { // a bulk string: its content
		body, err := r.ReadString('\n')
		return strings.TrimSpace(body), err
	}
	return line, nil
}

// TestLifecycle: a server starts empty on its own port, freezes (answers
// nothing) and thaws, dies by its PID, and restarts empty on the same port.
func TestLifecycle(t *testing.T) {
	s := redisproc.StartForTest(t)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.URL() != "redis://"+s.Addr() || s.Port() == 0 || s.Pid() == 0 {
		t.Fatalf("addr %q url %q port %d pid %d", s.Addr(), s.URL(), s.Port(), s.Pid())
	}
	if got, err := command(s.Addr(), time.Second, "SET", "k", "v"); err != nil || got != "+OK" {
		t.Fatalf("SET = %q, %v", got, err)
	}
	if err := s.Start(); err == nil {
		t.Error("Start of a running server succeeded")
	}
	if out := s.Output(); !strings.Contains(out, "Ready to accept connections") {
		t.Errorf("Output() = %q, want the server's log", out)
	}

	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	if got, err := command(s.Addr(), 300*time.Millisecond, "PING"); err == nil {
		t.Fatalf("a frozen server answered PING: %q", got)
	}
	if err := s.Thaw(); err != nil {
		t.Fatal(err)
	}
	if got, err := command(s.Addr(), time.Second, "GET", "k"); err != nil || got != "v" {
		t.Fatalf("GET after thaw = %q, %v; want v", got, err)
	}

	done := s.Done()
	s.Kill()
	select {
	case <-done:
	default:
		t.Fatal("Done not closed after Kill")
	}
	if s.Pid() != 0 {
		t.Errorf("Pid after Kill = %d", s.Pid())
	}
	if _, err := command(s.Addr(), 300*time.Millisecond, "PING"); err == nil {
		t.Fatal("the killed server still answers")
	}
	if err := s.Freeze(); err == nil {
		t.Error("Freeze of a killed server succeeded")
	}
	s.Kill() // idempotent

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got, err := command(s.Addr(), time.Second, "GET", "k"); err != nil || got != "$-1" {
		t.Fatalf("GET after restart = %q, %v; want nil (restarted empty)", got, err)
	}
}

// TestPortHeldByAnother: a server never takes another process's port for
// its own: Start fails, naming the address.
func TestPortHeldByAnother(t *testing.T) {
	first := redisproc.StartForTest(t)
	second, err := redisproc.New(redisproc.Options{Addr: first.Addr(), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Kill)
	if err := second.Start(); err == nil || !strings.Contains(err.Error(), first.Addr()) {
		t.Fatalf("Start on a held port = %v, want an error naming %s", err, first.Addr())
	}
	if got, err := command(first.Addr(), time.Second, "PING"); err != nil || got != "+PONG" {
		t.Fatalf("the first server after the attempt: %q, %v", got, err)
	}
}

func TestNewNeedsDir(t *testing.T) {
	if _, err := redisproc.New(redisproc.Options{Bin: "redis-server"}); err == nil {
		t.Fatal("New without Dir succeeded")
	}
}
