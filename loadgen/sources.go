package loadgen

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/valkey-io/valkey-go"

	valkeyadapter "github.com/halobestie/mitra-availability/adapters/valkey"
)

// readTimeout bounds every read of Postgres or Valkey by the checker.
const readTimeout = 10 * time.Second

// PostgresReader reads the truth of the checker from the service's
// Postgres database (migrations/*.sql), read-only.
type PostgresReader struct {
	db *sql.DB
}

var _ StoreReader = (*PostgresReader)(nil)

// OpenPostgres connects to the database at url (a postgres:// DSN).
func OpenPostgres(ctx context.Context, url string) (*PostgresReader, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("loadgen: opening postgres: %w", err)
	}
	db.SetMaxOpenConns(4)
	pctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("loadgen: connecting to postgres: %w", err)
	}
	return &PostgresReader{db: db}, nil
}

// Close closes the connections.
func (p *PostgresReader) Close() error { return p.db.Close() }

// Mitras implements StoreReader in one statement (one snapshot).
func (p *PostgresReader) Mitras(ctx context.Context) ([]MitraRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := p.db.QueryContext(ctx, `
		SELECT m.id::text, m.is_active, m.is_online, m.is_away, m.capacity, coalesce(o.n, 0)::int
		FROM mitras m
		LEFT JOIN (
			SELECT mitra_id, count(*) AS n FROM chat_sessions
			WHERE status IN ('pending_payment', 'active')
			GROUP BY mitra_id
		) o ON o.mitra_id = m.id`)
	if err != nil {
		return nil, fmt.Errorf("loadgen: reading mitras: %w", err)
	}
	defer rows.Close()
	var out []MitraRecord
	for rows.Next() {
		var m MitraRecord
		if err := rows.Scan(&m.ID, &m.IsActive, &m.IsOnline, &m.IsAway, &m.Capacity, &m.Open); err != nil {
			return nil, fmt.Errorf("loadgen: reading mitras: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: reading mitras: %w", err)
	}
	return out, nil
}

const sessionColumns = `id::text, status, customer_id::text, coalesce(mitra_id::text, ''), coalesce(end_reason, ''),
	created_at, searching_since, expires_at, ended_at, array_to_string(offered_mitra_ids, ',')`

// OpenSessions implements StoreReader.
func (p *PostgresReader) OpenSessions(ctx context.Context) ([]SessionRecord, error) {
	return p.sessions(ctx, `SELECT `+sessionColumns+` FROM chat_sessions
		WHERE status IN ('searching', 'pending_payment', 'active')`)
}

// Sessions implements StoreReader.
func (p *PostgresReader) Sessions(ctx context.Context, since time.Time) ([]SessionRecord, error) {
	return p.sessions(ctx, `SELECT `+sessionColumns+` FROM chat_sessions WHERE created_at >= $1`, since)
}

func (p *PostgresReader) sessions(ctx context.Context, query string, args ...any) ([]SessionRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := p.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("loadgen: reading sessions: %w", err)
	}
	defer rows.Close()
	var out []SessionRecord
	for rows.Next() {
		var (
			r       SessionRecord
			exp, en sql.NullTime
			offered string
		)
		if err := rows.Scan(&r.ID, &r.Status, &r.CustomerID, &r.MitraID, &r.EndReason,
			&r.CreatedAt, &r.SearchingSince, &exp, &en, &offered); err != nil {
			return nil, fmt.Errorf("loadgen: reading sessions: %w", err)
		}
		if exp.Valid {
			t := exp.Time
			r.ExpiresAt = &t
		}
		if en.Valid {
			t := en.Time
			r.EndedAt = &t
		}
		if offered != "" {
			r.OfferedMitraIDs = strings.Split(offered, ",")
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: reading sessions: %w", err)
	}
	return out, nil
}

// MitraIDsByPhone returns the ids of the mitras with the given phones.
func (p *PostgresReader) MitraIDsByPhone(ctx context.Context, phones []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	rows, err := p.db.QueryContext(ctx, `SELECT u.phone, u.id::text FROM users u JOIN mitras m ON m.id = u.id
		WHERE u.phone = ANY(string_to_array($1, ','))`, strings.Join(phones, ","))
	if err != nil {
		return nil, fmt.Errorf("loadgen: reading mitra ids: %w", err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var phone, id string
		if err := rows.Scan(&phone, &id); err != nil {
			return nil, fmt.Errorf("loadgen: reading mitra ids: %w", err)
		}
		out[phone] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: reading mitra ids: %w", err)
	}
	return out, nil
}

// ValkeyReader reads the availability mirror's keys (docs/valkey-keys.md)
// with plain read commands; it never writes.
type ValkeyReader struct {
	c                               valkey.Client
	free, full, deact, seeded, away string
}

var _ MirrorReader = (*ValkeyReader)(nil)

// Score packing of the mirror's free and full sets (docs/valkey-keys.md):
// score = ds*16384 + open*128 + capacity, ds in deciseconds since 2025-01-01.
const (
	scoreDSFactor   = 16384
	scoreOpenFactor = 128
)

var scoreEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// OpenValkey connects to the Valkey (or Redis) server at url (VALKEY_URL
// syntax) and reads the keys under prefix (VALKEY_KEY_PREFIX).
func OpenValkey(ctx context.Context, url, prefix string) (*ValkeyReader, error) {
	c, err := valkeyadapter.Open(ctx, valkeyadapter.Config{URL: url})
	if err != nil {
		return nil, fmt.Errorf("loadgen: connecting to valkey: %w", err)
	}
	// The adapter names the keys: free, full, deactivated, snapshot, seeded, away, lock prefix.
	keys := valkeyadapter.NewMirror(c, prefix, 0).Keys()
	if len(keys) < 7 {
		c.Close()
		return nil, errors.New("loadgen: unexpected mirror key list")
	}
	return &ValkeyReader{c: c, free: keys[0], full: keys[1], deact: keys[2], seeded: keys[4], away: keys[5]}, nil
}

// Close closes the client.
func (v *ValkeyReader) Close() { v.c.Close() }

// MirrorState implements MirrorReader: the two sorted sets, the deactivated
// set, the marker and the away set, read in one MULTI/EXEC (one atomic snapshot; every
// key is in the same slot).
func (v *ValkeyReader) MirrorState(ctx context.Context) (MirrorState, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	b := v.c.B()
	res := v.c.DoMulti(ctx,
		b.Multi().Build(),
		b.Zrange().Key(v.free).Min("0").Max("-1").Withscores().Build(),
		b.Zrange().Key(v.full).Min("0").Max("-1").Withscores().Build(),
		b.Smembers().Key(v.deact).Build(),
		b.Exists().Key(v.seeded).Build(),
		b.Smembers().Key(v.away).Build(),
		b.Exec().Build(),
	)
	for _, r := range res {
		if err := r.Error(); err != nil {
			return MirrorState{}, fmt.Errorf("loadgen: reading the mirror: %w", err)
		}
	}
	arr, err := res[len(res)-1].ToArray()
	if err != nil || len(arr) != 5 {
		return MirrorState{}, fmt.Errorf("loadgen: reading the mirror: bad EXEC reply (%v)", err)
	}
	st := MirrorState{Deactivated: make(map[string]bool), Away: make(map[string]bool)}
	if st.Free, err = decodeZSet(arr[0]); err != nil {
		return MirrorState{}, err
	}
	if st.Full, err = decodeZSet(arr[1]); err != nil {
		return MirrorState{}, err
	}
	members, err := arr[2].AsStrSlice()
	if err != nil {
		return MirrorState{}, fmt.Errorf("loadgen: reading the deactivated set: %w", err)
	}
	for _, m := range members {
		st.Deactivated[m] = true
	}
	n, err := arr[3].AsInt64()
	if err != nil {
		return MirrorState{}, fmt.Errorf("loadgen: reading the seeded marker: %w", err)
	}
	st.Seeded = n > 0
	away, err := arr[4].AsStrSlice()
	if err != nil {
		return MirrorState{}, fmt.Errorf("loadgen: reading the away set: %w", err)
	}
	for _, m := range away {
		st.Away[m] = true
	}
	return st, nil
}

func decodeZSet(msg valkey.ValkeyMessage) (map[string]MirrorEntry, error) {
	zs, err := msg.AsZScores()
	if err != nil {
		return nil, fmt.Errorf("loadgen: reading a mirror set: %w", err)
	}
	out := make(map[string]MirrorEntry, len(zs))
	for _, z := range zs {
		out[z.Member] = DecodeScore(int64(z.Score))
	}
	return out, nil
}

// DecodeScore unpacks a score of the mirror's free and full sets.
func DecodeScore(score int64) MirrorEntry {
	ds, low := score/scoreDSFactor, score%scoreDSFactor
	if low < 0 {
		ds--
		low += scoreDSFactor
	}
	return MirrorEntry{
		Open:      int(low / scoreOpenFactor),
		Capacity:  int(low % scoreOpenFactor),
		Heartbeat: scoreEpoch.Add(time.Duration(ds) * 100 * time.Millisecond),
	}
}
