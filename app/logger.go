package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/halobestie/mitra-availability/adapters/httpapi"
)

// logFlushInterval bounds how long an info or debug line waits in the
// log buffer; logBufferSize how much it holds before it is written at once.
const (
	logFlushInterval = 100 * time.Millisecond
	logBufferSize    = 32 << 10
)

// NewLogger builds the process logger on stderr: JSON lines in prod and
// test, text in dev. It returns the function that writes out what is
// buffered; call it before the process exits.
//
// Lines below warn (the access log above all: one per request) are
// buffered and written within logFlushInterval, or as soon as
// logBufferSize is full, rather than with one write system call each; a
// warn or error line is written at once, after everything logged before it.
func NewLogger(env, level string) (*slog.Logger, func()) {
	w := newBufferedWriter(os.Stderr, logFlushInterval, logBufferSize)
	return newLogger(env, level, w), w.Flush
}

func newLogger(env, level string, w *bufferedWriter) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if env == "dev" {
		return slog.New(flushingHandler{Handler: slog.NewTextHandler(w, opts), w: w})
	}
	return slog.New(flushingHandler{Handler: slog.NewJSONHandler(w, opts), w: w, plainJSON: true})
}

// flushingHandler writes out the buffer after each record at warn or above.
type flushingHandler struct {
	slog.Handler
	w *bufferedWriter
	// plainJSON: Handler is the JSON handler itself, with no attributes or
	// groups added, so jsonAccessLog may write its lines for it.
	plainJSON bool
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.w.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithAttrs(as), w: h.w}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}

// AccessLog is the access log for log: for a JSON logger made by NewLogger,
// jsonAccessLog; otherwise httpapi.SlogAccessLog(log).
func AccessLog(log *slog.Logger) httpapi.AccessLog {
	slow := httpapi.SlogAccessLog(log)
	if h, ok := log.Handler().(flushingHandler); ok && h.plainJSON {
		return jsonAccessLog{log: log, w: h.w, slow: slow}
	}
	return slow
}

// jsonAccessLog writes the access log's INFO lines itself, byte for byte
// as slog's JSON handler writes httpapi.SlogAccessLog's records, into the
// logger's buffer: no slog.Record, no attribute values, no escaping pass.
// Lines at another level (ERROR: they flush at once), and lines with a
// field the JSON handler would escape, go through slog (slow).
type jsonAccessLog struct {
	log  *slog.Logger
	w    *bufferedWriter
	slow httpapi.AccessLog
}

// accessLines are the buffers lines are encoded into before they are copied
// into the bufferedWriter.
var accessLines = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (a jsonAccessLog) Enabled(ctx context.Context, level slog.Level) bool {
	return a.log.Enabled(ctx, level)
}

func (a jsonAccessLog) Log(ctx context.Context, level slog.Level, e httpapi.AccessEntry) {
	if y := e.Time.Year(); level != slog.LevelInfo || y < 0 || y >= 10000 ||
		!jsonPlain(e.Method) || !jsonPlain(e.Route) || !jsonPlain(e.Path) ||
		!jsonPlain(e.RequestID) || !jsonPlain(e.RemoteIP) {
		a.slow.Log(ctx, level, e)
		return
	}
	bp := accessLines.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`+httpapi.AccessMessage+`","method":"`...)
	b = append(b, e.Method...)
	b = append(b, `","route":"`...)
	b = append(b, e.Route...)
	b = append(b, `","path":"`...)
	b = append(b, e.Path...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"latency":`...)
	b = strconv.AppendInt(b, int64(e.Latency), 10)
	b = append(b, `,"request_id":"`...)
	b = append(b, e.RequestID...)
	b = append(b, `","remote_ip":"`...)
	b = append(b, e.RemoteIP...)
	b = append(b, "\"}\n"...)
	_, _ = a.w.Write(b)
	*bp = b
	accessLines.Put(bp)
}

// jsonPlain reports whether slog's JSON handler writes s as is between
// quotes: printable ASCII other than " and \.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// bufferedWriter collects writes and passes them to out in one write when
// size bytes are held, when Flush is called, or interval after the first
// write it holds (a timer; no goroutine of its own lives between flushes).
// Safe for concurrent use; a failed write to out is dropped, as slog drops
// its handler's errors.
//
// It holds two buffers: while one is written to out, lines collect in the
// other, so a write system call never holds up a request that logs. When
// out blocks (a full pipe) and the second buffer fills as well, the writer
// that finds it full waits until out takes the first one: back pressure
// with at most 2×size bytes held, never a dropped line.
type bufferedWriter struct {
	out      io.Writer
	interval time.Duration
	size     int

	mu    sync.Mutex // guards buf and timer
	buf   []byte
	timer *time.Timer // armed while buf holds something

	outMu sync.Mutex // held while writing to out, so writes leave in order; guards spare
	spare []byte     // the other buffer, nil while it is being written
}

func newBufferedWriter(out io.Writer, interval time.Duration, size int) *bufferedWriter {
	return &bufferedWriter{out: out, interval: interval, size: size,
		buf: make([]byte, 0, size), spare: make([]byte, 0, size)}
}

// Write buffers p (one log line: slog writes each record in one call).
func (w *bufferedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if len(w.buf)+len(p) <= w.size && len(p) < w.size {
		w.buf = append(w.buf, p...)
		if w.timer == nil {
			w.timer = time.AfterFunc(w.interval, w.Flush)
		}
		w.mu.Unlock()
		return len(p), nil
	}
	held := w.takeLocked()
	if len(p) >= w.size {
		w.mu.Unlock()
		w.write(held)
		_, _ = w.out.Write(p) // still before any line logged after it: outMu is held
		w.release(held)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	w.timer = time.AfterFunc(w.interval, w.Flush)
	w.mu.Unlock()
	w.write(held)
	w.release(held)
	return len(p), nil
}

// Flush writes out what is buffered, and returns once every write begun
// before it (a timer's flush included) has reached out.
func (w *bufferedWriter) Flush() {
	w.mu.Lock()
	held := w.takeLocked()
	w.mu.Unlock()
	w.write(held)
	w.release(held)
}

// takeLocked takes what buf holds, with mu held: it waits for the write in
// progress, if any, then swaps in the spare buffer. The caller writes what
// it took and then calls release, which lets the next write begin.
func (w *bufferedWriter) takeLocked() []byte {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.outMu.Lock()
	held := w.buf
	w.buf = w.spare
	w.spare = nil
	return held
}

func (w *bufferedWriter) write(held []byte) {
	if len(held) > 0 {
		_, _ = w.out.Write(held)
	}
}

func (w *bufferedWriter) release(held []byte) {
	w.spare = held[:0]
	w.outMu.Unlock()
}
