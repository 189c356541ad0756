package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
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
	var h slog.Handler
	if env == "dev" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(flushingHandler{Handler: h, w: w})
}

// flushingHandler writes out the buffer after each record at warn or above.
type flushingHandler struct {
	slog.Handler
	w *bufferedWriter
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

// bufferedWriter collects writes and passes them to out in one write when
// size bytes are held, when Flush is called, or interval after the first
// write it holds (a timer; no goroutine of its own lives between flushes).
// Safe for concurrent use; a failed write to out is dropped, as slog drops
// its handler's errors.
type bufferedWriter struct {
	out      io.Writer
	interval time.Duration
	size     int

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // armed while buf holds something
}

func newBufferedWriter(out io.Writer, interval time.Duration, size int) *bufferedWriter {
	return &bufferedWriter{out: out, interval: interval, size: size, buf: make([]byte, 0, size)}
}

// Write buffers p (one log line: slog writes each record in one call).
func (w *bufferedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf)+len(p) > w.size {
		w.flushLocked()
	}
	if len(p) >= w.size {
		_, _ = w.out.Write(p)
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if w.timer == nil {
		w.timer = time.AfterFunc(w.interval, w.Flush)
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (w *bufferedWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

func (w *bufferedWriter) flushLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.buf) == 0 {
		return
	}
	_, _ = w.out.Write(w.buf)
	w.buf = w.buf[:0]
}
