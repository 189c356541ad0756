package ports

import "context"

// SessionCounts are the numbers of chat sessions in each open status.
type SessionCounts struct {
	Searching      int
	PendingPayment int
	Active         int
}

// SessionStats answers aggregate questions about chat sessions.
type SessionStats interface {
	CountOpenSessions(ctx context.Context) (SessionCounts, error)
}
