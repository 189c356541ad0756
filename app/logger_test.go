package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halobestie/mitra-availability/adapters/httpapi"
)

// syncBuffer records what reaches the output, one entry per write.
type syncBuffer struct {
	mu     sync.Mutex
	writes []string
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = append(b.writes, string(p))
	return len(p), nil
}

func (b *syncBuffer) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.writes...)
}

func TestLoggerBuffersInfoAndWritesWarnAtOnce(t *testing.T) {
	out := &syncBuffer{}
	w := newBufferedWriter(out, 50*time.Millisecond, 4096)
	log := newLogger("prod", "info", w)

	log.Info("one", "n", 1)
	log.Info("two", "n", 2)
	log.Debug("hidden")
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("info lines written at once: %q", got)
	}
	// A warn line goes out at once, after the lines before it, in one write.
	log.Warn("three")
	got := out.snapshot()
	if len(got) != 1 {
		t.Fatalf("after the warn line: %d writes %q, want 1", len(got), got)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(got[0]), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		msgs = append(msgs, m["msg"].(string))
	}
	if strings.Join(msgs, ",") != "one,two,three" {
		t.Fatalf("lines %v, want one,two,three in order", msgs)
	}

	// An info line alone is written within the interval.
	log.With("k", "v").Info("four")
	deadline := time.Now().Add(5 * time.Second)
	for len(out.snapshot()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the info line was not written within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := out.snapshot(); !strings.Contains(got[1], `"msg":"four"`) || !strings.Contains(got[1], `"k":"v"`) {
		t.Fatalf("second write %q", got[1])
	}
	// Error lines of a derived logger flush too.
	log.WithGroup("g").Info("five")
	log.WithGroup("g").Error("six")
	if got := out.snapshot(); len(got) != 3 || !strings.Contains(got[2], "five") || !strings.Contains(got[2], "six") {
		t.Fatalf("after the error line: %q", got)
	}
}

func TestBufferedWriterBoundsItsBuffer(t *testing.T) {
	out := &syncBuffer{}
	w := newBufferedWriter(out, time.Hour, 100)
	line := bytes.Repeat([]byte("x"), 39)
	line = append(line, '\n')
	w.Write(line)
	w.Write(line)
	if len(out.snapshot()) != 0 {
		t.Fatal("written before the buffer was full")
	}
	w.Write(line) // 120 > 100: the first two go out, this one waits
	if got := out.snapshot(); len(got) != 1 || len(got[0]) != 80 {
		t.Fatalf("writes %q", got)
	}
	big := bytes.Repeat([]byte("y"), 150)
	w.Write(big) // larger than the buffer: written through, after what was held
	if got := out.snapshot(); len(got) != 3 || len(got[1]) != 40 || len(got[2]) != 150 {
		t.Fatalf("writes %d: %q", len(got), got)
	}
	w.Flush()
	w.Flush()
	if got := out.snapshot(); len(got) != 3 {
		t.Fatalf("an empty flush wrote: %q", got)
	}

	// Concurrent writers: every line arrives whole.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				w.Write([]byte(strings.Repeat(string(rune('a'+g)), 9) + "\n"))
			}
		}()
	}
	wg.Wait()
	w.Flush()
	all := strings.Join(out.snapshot()[3:], "")
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if len(l) != 9 || strings.Count(l, l[:1]) != 9 {
			t.Fatalf("torn line %q", l)
		}
	}
}

// The access log's own JSON lines are the bytes slog's JSON handler writes
// for httpapi.SlogAccessLog's records, for plain fields and for fields it
// escapes (those go through slog), in the order they were logged.
func TestJSONAccessLogMatchesSlog(t *testing.T) {
	var got bytes.Buffer
	w := newBufferedWriter(&got, time.Hour, 1<<20)
	access := AccessLog(newLogger("prod", "info", w))
	if _, ok := access.(jsonAccessLog); !ok {
		t.Fatalf("AccessLog of a JSON logger is %T, want jsonAccessLog", access)
	}
	var want bytes.Buffer
	ref := httpapi.SlogAccessLog(slog.New(slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.LevelInfo})))

	at := time.Date(2026, 12, 7, 6, 5, 4, 123456789, time.UTC)
	base := httpapi.AccessEntry{Time: at, Method: "GET", Route: "/healthz", Path: "/healthz", Status: 200,
		Latency: 12345 * time.Nanosecond, RequestID: "0190a1b2-c3d4-8e5f-a6b7-c8d9e0f1a2b3", RemoteIP: "127.0.0.1"}
	entries := []httpapi.AccessEntry{base}
	for _, mod := range []func(*httpapi.AccessEntry){
		func(e *httpapi.AccessEntry) { e.Time = at.Truncate(time.Second) }, // no fraction
		func(e *httpapi.AccessEntry) { e.Time = at.Add(-123456700) },       // trailing zeros trimmed
		func(e *httpapi.AccessEntry) { e.Time = at.In(time.FixedZone("WIB", 7*3600)) },
		func(e *httpapi.AccessEntry) { e.Time = time.Now() }, // with a monotonic reading
		func(e *httpapi.AccessEntry) { e.Path = `/api/"quoted"\and` + "\t\n\x01\x7f" },
		func(e *httpapi.AccessEntry) { e.Path = "/ünïcode/\u2028/\xff" },
		func(e *httpapi.AccessEntry) { e.Path = "/<script>&amp;" },
		func(e *httpapi.AccessEntry) { e.Method, e.Route, e.Status = "OTHER", "unmatched", 404 },
		func(e *httpapi.AccessEntry) { e.RequestID = "a.b_c:d-e" },
		func(e *httpapi.AccessEntry) { e.RemoteIP = "2001:db8::1" },
		func(e *httpapi.AccessEntry) { e.Latency = 0 },
		func(e *httpapi.AccessEntry) { e.Latency = 90 * time.Second },
		func(e *httpapi.AccessEntry) { e.Path, e.RequestID = "", "" },
	} {
		e := base
		mod(&e)
		entries = append(entries, e)
	}
	ctx := context.Background()
	for _, e := range entries {
		access.Log(ctx, slog.LevelInfo, e)
		ref.Log(ctx, slog.LevelInfo, e)
	}
	// An ERROR line goes through slog and flushes what was held before it.
	e := base
	e.Status = 500
	access.Log(ctx, slog.LevelError, e)
	ref.Log(ctx, slog.LevelError, e)
	if got.String() != want.String() {
		gl, wl := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%d lines, want %d", len(gl), len(wl))
	}
	if n := strings.Count(got.String(), "\n"); n != len(entries)+1 {
		t.Fatalf("%d lines, want %d", n, len(entries)+1)
	}
}

// The access log follows the level, and a text or derived logger gets slog's.
func TestAccessLogLevelAndFallback(t *testing.T) {
	w := newBufferedWriter(io.Discard, time.Hour, 4096)
	ctx := context.Background()
	if AccessLog(newLogger("prod", "warn", w)).Enabled(ctx, slog.LevelInfo) {
		t.Error("LOG_LEVEL=warn: the access log's INFO lines are enabled")
	}
	if !AccessLog(newLogger("prod", "warn", w)).Enabled(ctx, slog.LevelError) {
		t.Error("LOG_LEVEL=warn: the access log's ERROR lines are disabled")
	}
	for name, log := range map[string]*slog.Logger{
		"dev (text)": newLogger("dev", "info", w),
		"derived":    newLogger("prod", "info", w).With("k", "v"),
		"group":      newLogger("prod", "info", w).WithGroup("g"),
		"foreign":    slog.New(slog.NewJSONHandler(io.Discard, nil)),
	} {
		if _, ok := AccessLog(log).(jsonAccessLog); ok {
			t.Errorf("%s logger: AccessLog is jsonAccessLog, want slog's", name)
		}
	}
}

// A write to out runs outside the buffer's lock: lines logged meanwhile
// collect in the other buffer; once that is full too, the writer waits for
// out (no line is dropped), and every line arrives once, in order.
func TestBufferedWriterWritesOutsideItsLock(t *testing.T) {
	out := &blockingWriter{release: make(chan struct{}), entered: make(chan struct{}, 16)}
	w := newBufferedWriter(out, time.Hour, 100)
	line := func(i int) []byte { return []byte(fmt.Sprintf("%08d\n", i)) } // 9 bytes
	for i := range 11 {
		w.Write(line(i)) // 99 bytes held
	}
	done := make(chan struct{})
	go func() { w.Write(line(11)); close(done) }() // full: writes the first 11, blocks in out
	<-out.entered
	// While out blocks, the other buffer (holding line 11) takes 10 more without waiting.
	for i := 12; i < 22; i++ {
		w.Write(line(i))
	}
	third := make(chan struct{})
	go func() { w.Write(line(22)); close(third) }() // the second buffer is full: waits
	select {
	case <-third:
		t.Fatal("a line was taken with both buffers full while out blocked")
	case <-time.After(50 * time.Millisecond):
	}
	close(out.release)
	<-done
	<-third
	w.Flush()
	var all strings.Builder
	for _, s := range out.snapshot() {
		all.WriteString(s)
	}
	for i, l := range strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n") {
		if l != fmt.Sprintf("%08d", i) {
			t.Fatalf("line %d is %q: lost, doubled or out of order\n%s", i, l, all.String())
		}
	}
	if n := strings.Count(all.String(), "\n"); n != 23 {
		t.Fatalf("%d lines, want 23", n)
	}
}

// blockingWriter records writes; each blocks until release is closed.
type blockingWriter struct {
	syncBuffer
	release chan struct{}
	entered chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.syncBuffer.Write(p)
}

// The cost of one access-log line at the default level, through
// jsonAccessLog and through slog's JSON handler (the lines are the same):
//
//	go test -run '^$' -bench '^BenchmarkAccessLog$' -benchmem ./app/
func BenchmarkAccessLog(b *testing.B) {
	e := httpapi.AccessEntry{Time: time.Now(), Method: "POST", Route: "/api/mitra/status/heartbeat",
		Path: "/api/mitra/status/heartbeat", Status: 204, Latency: 123456 * time.Nanosecond,
		RequestID: "0190a1b2-c3d4-8e5f-a6b7-c8d9e0f1a2b3", RemoteIP: "127.0.0.1"}
	for name, access := range map[string]func(*bufferedWriter) httpapi.AccessLog{
		"json": func(w *bufferedWriter) httpapi.AccessLog { return AccessLog(newLogger("prod", "info", w)) },
		"slog": func(w *bufferedWriter) httpapi.AccessLog { return httpapi.SlogAccessLog(newLogger("prod", "info", w)) },
	} {
		b.Run(name, func(b *testing.B) {
			a := access(newBufferedWriter(io.Discard, time.Hour, logBufferSize))
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if a.Enabled(ctx, slog.LevelInfo) {
						a.Log(ctx, slog.LevelInfo, e)
					}
				}
			})
		})
	}
}
