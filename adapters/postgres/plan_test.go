package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/halobestie/mitra-availability/adapters/postgres/pgtest"
	"github.com/halobestie/mitra-availability/ports"
)

// queryRecorder is a bun.QueryHook that keeps the SQL of every statement.
type queryRecorder struct {
	mu      sync.Mutex
	queries []string
}

func (r *queryRecorder) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (r *queryRecorder) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, e.Query)
}

func (r *queryRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queries
	r.queries = nil
	return q
}

// The hot session and truth queries are served by the indexes the migration
// made for them. Sequential scans are disabled so that the planner shows
// which indexes it can use, as it would at production volume (where the plans
// were checked with 100k mitras and a million sessions).
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	rec := &queryRecorder{}
	db.AddQueryHook(rec)
	s := newStore(t, db)
	ctx := t.Context()
	id := "00000000-0000-4000-8000-000000000000"

	cases := []struct {
		name    string
		call    func() error
		uses    []string
		mustNot []string
	}{
		{
			name: "DueTimers",
			call: func() error { _, err := s.DueTimers(ctx, time.Now(), 100); return err },
			uses: []string{"chat_sessions_offer_expires_idx", "chat_sessions_payment_due_idx", "chat_sessions_warn_idx", "chat_sessions_expires_idx", "chat_sessions_next_batch_idx"},
		},
		{
			name: "NextTimer",
			call: func() error { _, _, err := s.NextTimer(ctx); return err },
			uses: []string{"chat_sessions_offer_expires_idx", "chat_sessions_payment_due_idx", "chat_sessions_warn_idx", "chat_sessions_expires_idx", "chat_sessions_next_batch_idx"},
		},
		{
			name: "SessionsOf",
			call: func() error { _, err := s.SessionsOf(ctx, id, 20); return err },
			uses: []string{"chat_sessions_customer_created_idx", "chat_sessions_mitra_created_idx"},
		},
		{
			name: "Mitra",
			call: func() error {
				if _, err := s.Mitra(ctx, id); !errors.Is(err, ports.ErrNotFound) {
					return err
				}
				return nil
			},
			uses: []string{"chat_sessions_mitra_open_idx", "chat_sessions_mitra_ended_idx"},
		},
		{
			name: "Candidates",
			call: func() error {
				_, err := s.Candidates(ctx, ports.CandidateQuery{FreshSince: time.Now(), Order: ports.OrderLongestIdle, Limit: 3})
				return err
			},
			uses: []string{"mitras_reachable_idx", "chat_sessions_mitra_open_idx", "chat_sessions_mitra_ended_idx"},
		},
		{
			name:    "MirrorTruth",
			call:    func() error { _, _, err := s.MirrorTruth(ctx); return err },
			uses:    []string{"chat_sessions_mitra_open_idx", "mitras_deactivated_idx", "chat_sessions_mitra_ended_idx"},
			mustNot: []string{"SubPlan"}, // one grouped aggregate, not a count per mitra
		},
	}
	for _, c := range cases {
		rec.take()
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		queries := rec.take()
		if len(queries) != 1 {
			t.Fatalf("%s ran %d statements, want 1", c.name, len(queries))
		}
		var plan []string
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				return err
			}
			return tx.NewRaw("EXPLAIN "+queries[0]).Scan(ctx, &plan)
		})
		if err != nil {
			t.Fatalf("%s: explain: %v", c.name, err)
		}
		text := strings.Join(plan, "\n")
		for _, idx := range c.uses {
			if !strings.Contains(text, idx) {
				t.Errorf("%s does not use %s:\n%s", c.name, idx, text)
			}
		}
		for _, bad := range c.mustNot {
			if strings.Contains(text, bad) {
				t.Errorf("%s plan has %s:\n%s", c.name, bad, text)
			}
		}
	}
}
