package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/halobestie/mitra-availability/ports"
)

// Postgres error codes the store translates.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	// A string the database encoding cannot hold (a NUL, invalid UTF-8).
	codeCharacterNotInRepertoire = "22021"
	codeUntranslatableCharacter  = "22P05"
	phoneUniqueConstraint        = "users_phone_key"
	openSessionConstraint        = "chat_sessions_one_open_per_customer_idx"
)

// translate turns a driver error into the ports sentinel it stands for; other
// errors, and errors already translated, come back unchanged. The result wraps
// the original error too, so its detail survives for logs.
func translate(err error) error {
	if err == nil {
		return nil
	}
	for _, sentinel := range []error{ports.ErrNotFound, ports.ErrPhoneTaken, ports.ErrStoreUnavailable, ports.ErrRefreshReused, ports.ErrOpenSessionExists} {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ports.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
		switch pgErr.ConstraintName {
		case phoneUniqueConstraint:
			return fmt.Errorf("%w: %w", ports.ErrPhoneTaken, err)
		case openSessionConstraint:
			return fmt.Errorf("%w: %w", ports.ErrOpenSessionExists, err)
		}
	}
	if errors.As(err, &pgErr) && (pgErr.Code == codeCharacterNotInRepertoire || pgErr.Code == codeUntranslatableCharacter) {
		// The stores check their strings first; this is the last line of defence.
		return fmt.Errorf("%w: %w", &ports.InvalidValueError{Field: "body", Reason: "holds a character that cannot be stored"}, err)
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ports.ErrStoreUnavailable, err)
	}
	return err
}

// isForeignKeyViolation reports whether err is a foreign key violation, which
// the store reports as ErrNotFound for the row that was referenced.
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation
}

// unavailable reports whether err means Postgres could not be reached or
// stopped answering, as opposed to rejecting a statement.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, cannot connect now
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	case err.Error() == "sql: database is closed": // database/sql does not export this error
		return true
	}
	return false
}
