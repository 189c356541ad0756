// Package auth holds the account rules: signup, login, refresh-token rotation
// with reuse detection, logout and access-token verification.
//
// Access tokens are short-lived signed tokens (ports.TokenSigner) that are
// verified without a store lookup. Refresh tokens are opaque random strings;
// only their SHA-256 hash is stored, and every refresh rotates them. A rotated
// token presented again means it leaked: the store revokes the whole auth
// session, so the thief and the victim both have to log in again.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/halobestie/mitra-availability/core"
	"github.com/halobestie/mitra-availability/core/validate"
	"github.com/halobestie/mitra-availability/ports"
)

// Config holds the token lifetimes and the login throttle.
type Config struct {
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Throttle   Throttle
}

// Throttle limits login attempts (docs/contract.md §14). With no Limiter there is no limit.
type Throttle struct {
	// Limiter counts the attempts: shared by every instance through Valkey,
	// per instance while Valkey is down.
	Limiter ports.Limiter
	// MaxFailures is how many failed logins of one phone the window holds
	// before every attempt for that phone is refused (LOGIN_MAX_FAILURES).
	MaxFailures int
	// MaxPerAddress caps the attempts of one client address in the window;
	// 0 is no cap (LOGIN_MAX_PER_ADDRESS).
	MaxPerAddress int
	// Window is the sliding window of both limits (LOGIN_WINDOW_SECONDS).
	Window time.Duration
	// Throttled, when set, is called for each refused attempt with the limit
	// that refused it ("phone" or "address").
	Throttled func(limit string)
}

// Principal is the authenticated caller of a request.
type Principal struct {
	UserID    string
	Role      ports.Role
	SessionID string
}

// Tokens is the answer to a login or a refresh.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    time.Duration
	User         ports.User
}

// Service implements the auth use cases.
type Service struct {
	users   ports.UserStore
	mitras  ports.MitraStore
	authDB  ports.AuthStore
	hasher  ports.PasswordHasher
	signer  ports.TokenSigner
	clock   ports.Clock
	cfg     Config
	dummyPW string // hash compared against when the phone is unknown, to keep timing flat

	revocations  *Revocations                                    // nil: access tokens live until they expire
	ensureActive func(ctx context.Context, mitraID string) error // nil: no deactivation check
}

// SetRevocations makes Authenticate refuse the access tokens of revoked auth
// sessions, and Logout and a replayed refresh token record their revocation.
func (s *Service) SetRevocations(r *Revocations) { s.revocations = r }

// SetEnsureActive installs the check that tells a deactivated mitra
// (core.ErrAccountDeactivated) from one that logged out, for the tokens of
// revoked sessions (mitras.Service.EnsureActive).
func (s *Service) SetEnsureActive(f func(ctx context.Context, mitraID string) error) {
	s.ensureActive = f
}

// NewService builds the auth service.
func NewService(users ports.UserStore, mitras ports.MitraStore, authDB ports.AuthStore,
	hasher ports.PasswordHasher, signer ports.TokenSigner, clock ports.Clock, cfg Config) (*Service, error) {
	if cfg.AccessTTL <= 0 || cfg.RefreshTTL <= 0 {
		return nil, errors.New("auth: token lifetimes must be positive")
	}
	if th := cfg.Throttle; th.Limiter != nil && (th.MaxFailures < 1 || th.MaxPerAddress < 0 || th.Window <= 0) {
		return nil, errors.New("auth: the login throttle needs MaxFailures >= 1, MaxPerAddress >= 0 and a positive Window")
	}
	dummy, err := hasher.Hash("not-a-real-password")
	if err != nil {
		return nil, fmt.Errorf("auth: hashing the timing dummy: %w", err)
	}
	return &Service{users: users, mitras: mitras, authDB: authDB, hasher: hasher, signer: signer,
		clock: clock, cfg: cfg, dummyPW: dummy}, nil
}

// NewAccount is the input of a signup or an account creation.
type NewAccount struct {
	Phone       string
	Password    string
	DisplayName string
}

// PrepareUser validates an account and hashes its password, ready for a store.
func PrepareUser(hasher ports.PasswordHasher, role ports.Role, a NewAccount) (ports.NewUser, error) {
	if err := validate.Phone("phone", a.Phone); err != nil {
		return ports.NewUser{}, err
	}
	if err := validate.Password("password", a.Password); err != nil {
		return ports.NewUser{}, err
	}
	name, err := validate.DisplayName("display_name", a.DisplayName)
	if err != nil {
		return ports.NewUser{}, err
	}
	hash, err := hasher.Hash(a.Password)
	if err != nil {
		return ports.NewUser{}, fmt.Errorf("hashing password: %w", err)
	}
	return ports.NewUser{Role: role, Phone: a.Phone, DisplayName: name, PasswordHash: hash}, nil
}

// SignupCustomer creates a customer account.
func (s *Service) SignupCustomer(ctx context.Context, a NewAccount) (ports.User, error) {
	nu, err := PrepareUser(s.hasher, ports.RoleCustomer, a)
	if err != nil {
		return ports.User{}, err
	}
	return s.users.CreateUser(ctx, nu)
}

// CreateAdmin creates an admin account; ports.ErrPhoneTaken when the phone is in use.
func (s *Service) CreateAdmin(ctx context.Context, a NewAccount) (ports.User, error) {
	nu, err := PrepareUser(s.hasher, ports.RoleAdmin, a)
	if err != nil {
		return ports.User{}, err
	}
	return s.users.CreateUser(ctx, nu)
}

// EnsureAdmin makes sure an admin with this phone exists, creating it when missing.
// It reports whether it created one. A non-admin account with the phone is an error.
func (s *Service) EnsureAdmin(ctx context.Context, a NewAccount) (ports.User, bool, error) {
	u, err := s.users.UserByPhone(ctx, a.Phone)
	switch {
	case err == nil && u.Role == ports.RoleAdmin:
		return u, false, nil
	case err == nil:
		return ports.User{}, false, fmt.Errorf("ensuring admin: phone %s belongs to a %s account", a.Phone, u.Role)
	case !errors.Is(err, ports.ErrNotFound):
		return ports.User{}, false, fmt.Errorf("ensuring admin: %w", err)
	}
	u, err = s.CreateAdmin(ctx, a)
	if errors.Is(err, ports.ErrPhoneTaken) { // another instance won the race
		u, err = s.users.UserByPhone(ctx, a.Phone)
		return u, false, err
	}
	return u, err == nil, err
}

// Login checks credentials and starts an auth session; it is LoginFrom with
// no client address (no per-address limit).
func (s *Service) Login(ctx context.Context, phone, password string) (Tokens, error) {
	return s.LoginFrom(ctx, "", phone, password)
}

// LoginFrom checks credentials and starts an auth session. addr is the
// client address of docs/contract.md §14 ("" when unknown).
//
// Throttling: the attempt is counted before the password is checked, and a
// successful check clears the phone's count, so what the window holds are
// the failures since the last success (and attempts still in flight): any
// number of concurrent guesses gets at most MaxFailures bcrypt comparisons.
// A refused attempt costs no comparison and is not counted. A phone with no
// account is counted alike and compared against a dummy hash, so neither the
// answer nor its time tells whether an account exists.
func (s *Service) LoginFrom(ctx context.Context, addr, phone, password string) (Tokens, error) {
	if phone == "" {
		return Tokens{}, core.Invalid("phone", "is required")
	}
	if password == "" {
		return Tokens{}, core.Invalid("password", "is required")
	}
	if err := s.countAttempt(ctx, addr, phone); err != nil {
		return Tokens{}, err
	}
	u, err := s.users.UserByPhone(ctx, phone)
	if errors.Is(err, ports.ErrNotFound) {
		_ = s.hasher.Compare(s.dummyPW, password)
		return Tokens{}, core.ErrInvalidCredentials
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if s.hasher.Compare(u.PasswordHash, password) != nil {
		return Tokens{}, core.ErrInvalidCredentials
	}
	if th := s.cfg.Throttle; th.Limiter != nil {
		if err := th.Limiter.Reset(ctx, phoneLimitKey(phone)); err != nil {
			return Tokens{}, fmt.Errorf("login: clearing the failure count: %w", err)
		}
	}
	if u.Role == ports.RoleMitra {
		m, err := s.mitras.Mitra(ctx, u.ID)
		if err != nil {
			return Tokens{}, fmt.Errorf("login: %w", err)
		}
		if !m.IsActive {
			return Tokens{}, core.ErrAccountDeactivated
		}
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, err
	}
	now := s.clock.Now()
	sess, err := s.authDB.CreateAuthSession(ctx, u.ID, hash, now, now.Add(s.cfg.RefreshTTL))
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	return s.issue(u, sess.ID, refresh, now)
}

func phoneLimitKey(phone string) string { return "login:phone:" + phone }
func addrLimitKey(addr string) string   { return "login:addr:" + addr }

// countAttempt counts a login attempt against the address limit (when on and
// the address known) and the phone limit, or returns the *core.RateLimitedError
// of the first limit that refuses it.
func (s *Service) countAttempt(ctx context.Context, addr, phone string) error {
	th := s.cfg.Throttle
	if th.Limiter == nil {
		return nil
	}
	now := s.clock.Now()
	if th.MaxPerAddress > 0 && addr != "" {
		if err := s.take(ctx, "address", addrLimitKey(addr), now, th.MaxPerAddress); err != nil {
			return err
		}
	}
	return s.take(ctx, "phone", phoneLimitKey(phone), now, th.MaxFailures)
}

func (s *Service) take(ctx context.Context, limit, key string, now time.Time, max int) error {
	th := s.cfg.Throttle
	ra, err := th.Limiter.Take(ctx, key, now, max, th.Window)
	if err != nil {
		return fmt.Errorf("login: counting the attempt: %w", err)
	}
	if ra <= 0 {
		return nil
	}
	if th.Throttled != nil {
		th.Throttled(limit)
	}
	return &core.RateLimitedError{Limit: limit, RetryAfter: ra}
}

// Refresh rotates a refresh token: the presented one stops working and a new
// one, valid for the refresh lifetime from now, is returned with a new access token.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	if refreshToken == "" {
		return Tokens{}, core.Invalid("refresh_token", "is required")
	}
	next, nextHash, err := newRefreshToken()
	if err != nil {
		return Tokens{}, err
	}
	now := s.clock.Now()
	sess, err := s.authDB.RotateRefreshToken(ctx, hashToken(refreshToken), nextHash, now, now.Add(s.cfg.RefreshTTL))
	if errors.Is(err, ports.ErrRefreshReused) && sess.ID != "" && sess.RevokedAt != nil {
		// A leaked token: the access tokens of its session stop too.
		s.recordRevoked(ports.Revocation{SessionID: sess.ID, UserID: sess.UserID, RevokedAt: *sess.RevokedAt})
	}
	if errors.Is(err, ports.ErrNotFound) || errors.Is(err, ports.ErrRefreshReused) {
		return Tokens{}, fmt.Errorf("%w: refresh token is invalid, expired or revoked", core.ErrUnauthenticated)
	}
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	u, err := s.users.UserByID(ctx, sess.UserID)
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	return s.issue(u, sess.ID, next, now)
}

// Logout revokes the auth session the caller's access token was issued for:
// its refresh token, and its access tokens on every instance.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	now := s.clock.Now()
	err := s.authDB.RevokeAuthSession(ctx, p.SessionID, now)
	if errors.Is(err, ports.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	s.recordRevoked(ports.Revocation{SessionID: p.SessionID, UserID: p.UserID, RevokedAt: now})
	return nil
}

// RecordRevoked tells every instance that these auth sessions were revoked
// (after the store committed it), so that their access tokens stop working.
func (s *Service) RecordRevoked(revs []ports.Revocation) {
	if s.revocations != nil {
		s.revocations.Record(revs)
	}
}

func (s *Service) recordRevoked(r ports.Revocation) { s.RecordRevoked([]ports.Revocation{r}) }

// Authenticate verifies an access token and refuses one whose auth session
// was revoked. It needs no store: the revocations are held in memory, so a
// heartbeat stays free of Postgres statements. A mitra's token revoked by
// its deactivation is core.ErrAccountDeactivated (asked of the deactivated
// set, only for revoked tokens); any other revoked token is
// core.ErrUnauthenticated wrapping ErrRevoked.
func (s *Service) Authenticate(token string) (Principal, error) {
	c, err := s.signer.Verify(token, s.clock.Now())
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", core.ErrUnauthenticated, err)
	}
	p := Principal{UserID: c.UserID, Role: c.Role, SessionID: c.SessionID}
	if s.revocations != nil && s.revocations.Revoked(c.SessionID) {
		if p.Role == ports.RoleMitra && s.ensureActive != nil {
			// No request context reaches here; the mirror and the store calls
			// carry their own deadlines.
			if err := s.ensureActive(context.Background(), p.UserID); errors.Is(err, core.ErrAccountDeactivated) {
				return Principal{}, err
			}
		}
		return Principal{}, fmt.Errorf("%w: %w", core.ErrUnauthenticated, ErrRevoked)
	}
	return p, nil
}

func (s *Service) issue(u ports.User, sessionID, refresh string, now time.Time) (Tokens, error) {
	access, err := s.signer.Sign(ports.AccessClaims{
		UserID: u.ID, Role: u.Role, SessionID: sessionID,
		IssuedAt: now, ExpiresAt: now.Add(s.cfg.AccessTTL),
	})
	if err != nil {
		return Tokens{}, fmt.Errorf("signing access token: %w", err)
	}
	return Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.cfg.AccessTTL, User: u}, nil
}

// newRefreshToken returns a random opaque token and the hash that is stored.
func newRefreshToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generating refresh token: %w", err)
	}
	t := "rt_" + base64.RawURLEncoding.EncodeToString(b)
	return t, hashToken(t), nil
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}
