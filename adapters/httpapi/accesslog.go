package httpapi

import (
	"context"
	"log/slog"
	"time"
)

// AccessMessage is the message of every access-log line.
const AccessMessage = "http request"

// AccessEntry is one access-log line: one request served.
type AccessEntry struct {
	Time      time.Time // when the line is logged
	Method    string
	Route     string // the matched route template, or "unmatched"
	Path      string // never the query: it may carry an access token
	Status    int
	Latency   time.Duration
	RequestID string
	RemoteIP  string
}

// AccessLog writes the access log: one line per request, at INFO, or at
// ERROR for a 5xx. Enabled is asked first, so a disabled level costs no entry.
type AccessLog interface {
	Enabled(ctx context.Context, level slog.Level) bool
	Log(ctx context.Context, level slog.Level, e AccessEntry)
}

// SlogAccessLog writes the access log through logger: the message
// AccessMessage with the entry's fields as attributes, in this order:
// method, route, path, status, latency, request_id, remote_ip.
func SlogAccessLog(logger *slog.Logger) AccessLog { return slogAccessLog{logger} }

type slogAccessLog struct{ l *slog.Logger }

func (a slogAccessLog) Enabled(ctx context.Context, level slog.Level) bool {
	return a.l.Enabled(ctx, level)
}

func (a slogAccessLog) Log(ctx context.Context, level slog.Level, e AccessEntry) {
	r := slog.NewRecord(e.Time, level, AccessMessage, 0)
	r.AddAttrs(
		slog.String("method", e.Method),
		slog.String("route", e.Route),
		slog.String("path", e.Path),
		slog.Int("status", e.Status),
		slog.Duration("latency", e.Latency),
		slog.String("request_id", e.RequestID),
		slog.String("remote_ip", e.RemoteIP),
	)
	_ = a.l.Handler().Handle(ctx, r)
}
