// Package config reads the service's configuration from the environment
// (docs/contract.md §1) and validates it. A bad value is reported as one error naming
// the variable, so the process can exit with one clear line.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environments select the fx option set.
const (
	EnvDev  = "dev"
	EnvTest = "test"
	EnvProd = "prod"
)

// Store and cache backends.
const (
	StoreMemory   = "memory"
	StorePostgres = "postgres"
	CacheMemory   = "memory"
	CacheValkey   = "valkey"
	CacheNone     = "none"
	PushNone      = "none"
	PushLog       = "log"
	PushFCM       = "fcm"
)

// Routing strategies (ROUTING_STRATEGY, docs/contract.md §11).
const (
	RoutingBlast       = "blast"
	RoutingLongestIdle = "longest_idle"
	RoutingLeastLoaded = "least_loaded"
)

// DefaultFCMEndpoint is the base URL of FCM's HTTP v1 API.
const DefaultFCMEndpoint = "https://fcm.googleapis.com"

// Config is the whole configuration of one process.
type Config struct {
	HTTPAddr       string
	AppEnv         string
	StoreBackend   string
	DatabaseURL    string
	MigrateOnStart bool
	CacheBackend   string
	ValkeyURL      string
	ValkeyPrefix   string
	ValkeyTimeout  time.Duration

	JWTSecret       []byte
	JWTSecretRandom bool // true when no JWT_SECRET was given and a random one was made
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration

	AdminPhone    string
	AdminPassword string

	DefaultMitraCapacity int

	HeartbeatStale       time.Duration
	AutoOfflineSweep     time.Duration
	HeartbeatMirrorEvery time.Duration
	MirrorReseedEvery    time.Duration
	AvailabilitySnapshot time.Duration
	PairingTimeout       time.Duration
	PaymentTimeout       time.Duration
	SessionWarningLead   time.Duration
	QueueTimeout         time.Duration
	RoutingStrategy      string
	BlastLimit           int
	OfferBatchSize       int
	OfferBatchInterval   time.Duration
	ShutdownTimeout      time.Duration
	EventRetention       time.Duration
	LogLevel             string
	// PprofAddr is where net/http/pprof is served (PPROF_ADDR); empty: nowhere.
	PprofAddr string

	PushBackend        string
	FCMProjectID       string
	FCMCredentialsFile string
	FCMCredentials     []byte // the file's content, read by Load
	FCMEndpoint        string
	// Login throttling (docs/contract.md §14).
	LoginMaxFailures   int
	LoginWindow        time.Duration
	LoginMaxPerAddress int            // 0: no per-address limit
	TrustedProxies     []netip.Prefix // peers whose X-Forwarded-For is believed
}

// Error is a configuration error about one variable.
type Error struct {
	Var    string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid configuration: %s %s", e.Var, e.Reason)
}

// Load reads the configuration from getenv (os.Getenv in production) and validates it.
func Load(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		HTTPAddr:     r.str("HTTP_ADDR", ":8080"),
		AppEnv:       r.str("APP_ENV", EnvDev),
		DatabaseURL:  r.str("DATABASE_URL", ""),
		ValkeyURL:    r.str("VALKEY_URL", ""),
		ValkeyPrefix: getenv("VALKEY_KEY_PREFIX"),
		AdminPhone:   r.str("ADMIN_PHONE", ""),
		LogLevel:     r.str("LOG_LEVEL", "info"),
	}
	c.AdminPassword = getenv("ADMIN_PASSWORD")
	c.StoreBackend = r.str("STORE_BACKEND", defaultIf(c.DatabaseURL != "", StorePostgres, StoreMemory))
	c.CacheBackend = r.str("CACHE_BACKEND", defaultIf(c.ValkeyURL != "", CacheValkey, CacheMemory))
	c.MigrateOnStart = r.boolean("MIGRATE_ON_START", true)
	c.ValkeyTimeout = r.duration("VALKEY_TIMEOUT", 200*time.Millisecond)
	c.AccessTokenTTL = r.duration("ACCESS_TOKEN_TTL", 15*time.Minute)
	c.RefreshTokenTTL = r.duration("REFRESH_TOKEN_TTL", 720*time.Hour)
	c.ShutdownTimeout = r.duration("SHUTDOWN_TIMEOUT", 15*time.Second)
	c.EventRetention = r.duration("EVENT_RETENTION", 24*time.Hour)
	c.DefaultMitraCapacity = r.integer("DEFAULT_MITRA_CAPACITY", 1, 0, 100)
	c.HeartbeatStale = r.seconds("HEARTBEAT_STALE_SECONDS", 90)
	c.AutoOfflineSweep = r.seconds("MITRA_AUTO_OFFLINE_SWEEP_SECONDS", 30)
	c.HeartbeatMirrorEvery = r.seconds("HEARTBEAT_MIRROR_INTERVAL_SECONDS", 60)
	c.MirrorReseedEvery = r.seconds("VALKEY_ONLINE_MIRROR_SWEEP_SECONDS", 300)
	c.AvailabilitySnapshot = r.seconds("AVAILABILITY_SNAPSHOT_TTL_SECONDS", 10)
	c.PairingTimeout = r.seconds("PAIRING_TIMEOUT_SECONDS", 60)
	c.PaymentTimeout = r.seconds("PAYMENT_TIMEOUT_SECONDS", 600)
	c.SessionWarningLead = r.seconds("SESSION_WARNING_LEAD_SECONDS", 180)
	c.QueueTimeout = r.seconds("QUEUE_TIMEOUT_SECONDS", 900)
	c.RoutingStrategy = r.str("ROUTING_STRATEGY", RoutingBlast)
	c.BlastLimit = r.integer("BLAST_LIMIT", 0, 0, 1_000_000)
	c.OfferBatchSize = r.integer("OFFER_BATCH_SIZE", 3, 1, 1000)
	c.OfferBatchInterval = r.seconds("OFFER_BATCH_SECONDS", 15)
	c.PushBackend = r.str("PUSH_BACKEND", PushNone)
	c.FCMProjectID = r.str("FCM_PROJECT_ID", "")
	c.FCMCredentialsFile = r.str("FCM_CREDENTIALS_FILE", "")
	c.FCMEndpoint = r.str("FCM_ENDPOINT", DefaultFCMEndpoint)
	c.LoginMaxFailures = r.integer("LOGIN_MAX_FAILURES", 5, 1, 1_000_000)
	c.LoginWindow = r.seconds("LOGIN_WINDOW_SECONDS", 900)
	c.LoginMaxPerAddress = r.integer("LOGIN_MAX_PER_ADDRESS", 0, 0, 1_000_000)
	c.TrustedProxies = r.prefixes("TRUSTED_PROXIES")
	c.PprofAddr = r.str("PPROF_ADDR", "")
	if r.err != nil {
		return Config{}, r.err
	}
	if c.PushBackend == PushFCM && c.FCMCredentialsFile != "" {
		b, err := os.ReadFile(c.FCMCredentialsFile)
		if err != nil {
			return Config{}, &Error{"FCM_CREDENTIALS_FILE", fmt.Sprintf("cannot be read: %v", err)}
		}
		c.FCMCredentials = b
	}

	secret := getenv("JWT_SECRET")
	if secret == "" && c.AppEnv != EnvProd {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Config{}, fmt.Errorf("generating a JWT secret: %w", err)
		}
		secret = hex.EncodeToString(b)
		c.JWTSecretRandom = true
	}
	c.JWTSecret = []byte(secret)
	return c, c.Validate()
}

// Vars lists every environment variable of the service: each name Load reads,
// in the order it reads them, so that a test that starts the server can remove
// them from what it inherits (internal/serverproc), and so that the docs can be
// checked against it (docs/contract.md §1 and docs/operations.md list each one).
//
// Load reads every variable whatever the others hold, but some only matter
// under a condition, and a future Load may read them only then; Vars probes Load
// with each condition met (varConditions), so such a variable is listed as well:
//   - FCM_PROJECT_ID, FCM_CREDENTIALS_FILE (the file is read) and FCM_ENDPOINT:
//     when PUSH_BACKEND=fcm;
//   - DATABASE_URL: with STORE_BACKEND=postgres (its default when set);
//   - VALKEY_URL, VALKEY_KEY_PREFIX, VALKEY_TIMEOUT and
//     VALKEY_ONLINE_MIRROR_SWEEP_SECONDS: with CACHE_BACKEND=valkey;
//   - JWT_SECRET: required when APP_ENV=prod (random per process otherwise);
//   - ADMIN_PASSWORD: with ADMIN_PHONE.
func Vars() []string {
	var names []string
	seen := map[string]bool{}
	for _, probe := range varConditions {
		_, _ = Load(func(name string) string {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
			return probe[name]
		})
	}
	return names
}

// varConditions are the environments Vars probes Load with: the empty one,
// then one per condition under which a variable matters. A probe need not
// load cleanly (FCM_CREDENTIALS_FILE names no file): only the names it reads count.
var varConditions = []map[string]string{
	{},
	{"PUSH_BACKEND": PushFCM, "FCM_PROJECT_ID": "p", "FCM_CREDENTIALS_FILE": "/nonexistent/fcm.json"},
	{"STORE_BACKEND": StorePostgres, "DATABASE_URL": "postgres://127.0.0.1:1/x"},
	{"CACHE_BACKEND": CacheValkey, "VALKEY_URL": "redis://127.0.0.1:1"},
	{"APP_ENV": EnvProd, "ADMIN_PHONE": "+620000000000"},
}

// Validate checks the relations between values; each failure names its variable.
func (c Config) Validate() error {
	switch {
	case c.AppEnv != EnvDev && c.AppEnv != EnvTest && c.AppEnv != EnvProd:
		return &Error{"APP_ENV", fmt.Sprintf("must be dev, test or prod, not %q", c.AppEnv)}
	case c.StoreBackend != StoreMemory && c.StoreBackend != StorePostgres:
		return &Error{"STORE_BACKEND", fmt.Sprintf("must be memory or postgres, not %q", c.StoreBackend)}
	case c.StoreBackend == StorePostgres && c.DatabaseURL == "":
		return &Error{"DATABASE_URL", "is required when STORE_BACKEND=postgres"}
	case c.CacheBackend != CacheMemory && c.CacheBackend != CacheValkey && c.CacheBackend != CacheNone:
		return &Error{"CACHE_BACKEND", fmt.Sprintf("must be memory, valkey or none, not %q", c.CacheBackend)}
	case c.CacheBackend == CacheValkey && c.ValkeyURL == "":
		return &Error{"VALKEY_URL", "is required when CACHE_BACKEND=valkey"}
	case len(c.JWTSecret) == 0:
		return &Error{"JWT_SECRET", "is required when APP_ENV=prod"}
	case c.AppEnv == EnvProd && len(c.JWTSecret) < 32:
		return &Error{"JWT_SECRET", "must be at least 32 bytes when APP_ENV=prod"}
	case (c.AdminPhone == "") != (c.AdminPassword == ""):
		return &Error{"ADMIN_PHONE", "and ADMIN_PASSWORD must be set together"}
	case c.HTTPAddr == "":
		return &Error{"HTTP_ADDR", "must not be empty"}
	case c.PprofAddr != "" && c.PprofAddr == c.HTTPAddr:
		return &Error{"PPROF_ADDR", "must differ from HTTP_ADDR: the profiles are never served on the API's listener"}
	case c.RoutingStrategy != RoutingBlast && c.RoutingStrategy != RoutingLongestIdle && c.RoutingStrategy != RoutingLeastLoaded:
		return &Error{"ROUTING_STRATEGY", fmt.Sprintf("must be blast, longest_idle or least_loaded, not %q", c.RoutingStrategy)}
	case strings.ContainsAny(c.ValkeyPrefix, "{}"):
		return &Error{"VALKEY_KEY_PREFIX", "must not contain { or }: the service's keys carry their own hash tag"}
	}
	if err := c.validatePush(); err != nil {
		return err
	}
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return &Error{"DATABASE_URL", "must be a postgres:// URL"}
		}
	}
	if c.ValkeyURL != "" {
		for _, addr := range strings.Split(c.ValkeyURL, ",") {
			addr = strings.TrimSpace(addr)
			if strings.Contains(addr, "://") {
				u, err := url.Parse(addr)
				if err != nil || (u.Scheme != "redis" && u.Scheme != "valkey" && u.Scheme != "rediss" && u.Scheme != "valkeys") || u.Host == "" {
					return &Error{"VALKEY_URL", "must be redis:// or valkey:// URLs (comma-separated for a cluster)"}
				}
			} else if addr == "" {
				return &Error{"VALKEY_URL", "has an empty address"}
			}
		}
	}
	return nil
}

// validatePush checks the push backend and, for fcm, its project, its
// endpoint and that the credentials are a service account's JSON key.
func (c Config) validatePush() error {
	switch c.PushBackend {
	case PushNone, PushLog:
		return nil
	case PushFCM:
	default:
		return &Error{"PUSH_BACKEND", fmt.Sprintf("must be none, log or fcm, not %q", c.PushBackend)}
	}
	if c.FCMProjectID == "" {
		return &Error{"FCM_PROJECT_ID", "is required when PUSH_BACKEND=fcm"}
	}
	if c.FCMCredentialsFile == "" {
		return &Error{"FCM_CREDENTIALS_FILE", "is required when PUSH_BACKEND=fcm"}
	}
	var key struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(c.FCMCredentials, &key); err != nil || key.Type != "service_account" ||
		key.ClientEmail == "" || key.PrivateKey == "" {
		return &Error{"FCM_CREDENTIALS_FILE", "must be a service account's JSON key (type service_account, with client_email and private_key)"}
	}
	if u, err := url.Parse(c.FCMEndpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &Error{"FCM_ENDPOINT", "must be an http(s) URL such as " + DefaultFCMEndpoint}
	}
	return nil
}

func defaultIf(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// reader parses variables, keeping the first error.
type reader struct {
	getenv func(string) string
	err    error
}

func (r *reader) fail(name, reason string) {
	if r.err == nil {
		r.err = &Error{name, reason}
	}
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) boolean(name string, def bool) bool {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, fmt.Sprintf("must be true or false, not %q", v))
	}
	return b
}

func (r *reader) integer(name string, def, min, max int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		r.fail(name, fmt.Sprintf("must be an integer from %d to %d, not %q", min, max, v))
	}
	return n
}

func (r *reader) seconds(name string, def int) time.Duration {
	return time.Duration(r.integer(name, def, 1, 86400*30)) * time.Second
}

// prefixes parses a comma-separated list of CIDRs; a bare address stands for
// itself (/32 or /128).
func (r *reader) prefixes(name string) []netip.Prefix {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return nil
	}
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			r.fail(name, fmt.Sprintf("must be comma-separated CIDRs such as 10.0.0.0/8,2001:db8::/32, not %q", s))
			return nil
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(name, fmt.Sprintf("must be a positive duration such as 15m, not %q", v))
	}
	return d
}
