package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPAddr: ":8080", AppEnv: EnvDev, StoreBackend: StoreMemory, CacheBackend: CacheMemory,
		MigrateOnStart: true, AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 720 * time.Hour,
		DefaultMitraCapacity: 1, HeartbeatStale: 90 * time.Second, AutoOfflineSweep: 30 * time.Second,
		HeartbeatMirrorEvery: 60 * time.Second, MirrorReseedEvery: 300 * time.Second,
		AvailabilitySnapshot: 10 * time.Second, PairingTimeout: 60 * time.Second,
		PaymentTimeout: 600 * time.Second, SessionWarningLead: 180 * time.Second,
	}
	got := c
	got.JWTSecret, got.JWTSecretRandom, got.ValkeyTimeout, got.ShutdownTimeout, got.LogLevel = nil, false, 0, 0, ""
	if got.HTTPAddr != want.HTTPAddr || got.AppEnv != want.AppEnv || got.StoreBackend != want.StoreBackend ||
		got.CacheBackend != want.CacheBackend || got.MigrateOnStart != want.MigrateOnStart ||
		got.AccessTokenTTL != want.AccessTokenTTL || got.RefreshTokenTTL != want.RefreshTokenTTL ||
		got.DefaultMitraCapacity != want.DefaultMitraCapacity || got.HeartbeatStale != want.HeartbeatStale ||
		got.AutoOfflineSweep != want.AutoOfflineSweep || got.HeartbeatMirrorEvery != want.HeartbeatMirrorEvery ||
		got.MirrorReseedEvery != want.MirrorReseedEvery || got.AvailabilitySnapshot != want.AvailabilitySnapshot ||
		got.PairingTimeout != want.PairingTimeout || got.PaymentTimeout != want.PaymentTimeout ||
		got.SessionWarningLead != want.SessionWarningLead {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if !c.JWTSecretRandom || len(c.JWTSecret) < 32 {
		t.Fatal("dev must get a random JWT secret")
	}
	if c.ValkeyTimeout != 200*time.Millisecond {
		t.Fatalf("VALKEY_TIMEOUT default = %v", c.ValkeyTimeout)
	}
}

func TestBackendsFollowURLs(t *testing.T) {
	c, err := Load(env(map[string]string{"DATABASE_URL": "postgres://u@h/db", "VALKEY_URL": "redis://127.0.0.1:6379"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.StoreBackend != StorePostgres || c.CacheBackend != CacheValkey {
		t.Fatalf("store %s cache %s", c.StoreBackend, c.CacheBackend)
	}
	c, err = Load(env(map[string]string{"VALKEY_URL": "127.0.0.1:7000,127.0.0.1:7001", "CACHE_BACKEND": "none"}))
	if err != nil || c.CacheBackend != CacheNone {
		t.Fatalf("explicit none: %+v %v", c.CacheBackend, err)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"APP_ENV":                          {"APP_ENV": "staging"},
		"STORE_BACKEND":                    {"STORE_BACKEND": "mysql"},
		"CACHE_BACKEND":                    {"CACHE_BACKEND": "redis"},
		"DATABASE_URL":                     {"STORE_BACKEND": "postgres"},
		"VALKEY_URL":                       {"CACHE_BACKEND": "valkey"},
		"JWT_SECRET":                       {"APP_ENV": "prod"},
		"ACCESS_TOKEN_TTL":                 {"ACCESS_TOKEN_TTL": "15 minutes"},
		"REFRESH_TOKEN_TTL":                {"REFRESH_TOKEN_TTL": "-1h"},
		"HEARTBEAT_STALE_SECONDS":          {"HEARTBEAT_STALE_SECONDS": "ninety"},
		"MITRA_AUTO_OFFLINE_SWEEP_SECONDS": {"MITRA_AUTO_OFFLINE_SWEEP_SECONDS": "0"},
		"DEFAULT_MITRA_CAPACITY":           {"DEFAULT_MITRA_CAPACITY": "101"},
		"MIGRATE_ON_START":                 {"MIGRATE_ON_START": "maybe"},
		"ADMIN_PHONE":                      {"ADMIN_PHONE": "+628100000000"},
		"VALKEY_KEY_PREFIX":                {"VALKEY_KEY_PREFIX": "app{1}:"},
		"SESSION_WARNING_LEAD_SECONDS":     {"SESSION_WARNING_LEAD_SECONDS": "1.5"},
		"BLAST_LIMIT":                      {"BLAST_LIMIT": "-1"},
		"QUEUE_TIMEOUT_SECONDS":            {"QUEUE_TIMEOUT_SECONDS": "0"},
		"ROUTING_STRATEGY":                 {"ROUTING_STRATEGY": "random"},
		"OFFER_BATCH_SIZE":                 {"OFFER_BATCH_SIZE": "0"},
		"OFFER_BATCH_SECONDS":              {"OFFER_BATCH_SECONDS": "1.5"},
		"LOGIN_MAX_FAILURES":               {"LOGIN_MAX_FAILURES": "0"},
		"LOGIN_WINDOW_SECONDS":             {"LOGIN_WINDOW_SECONDS": "15m"},
		"LOGIN_MAX_PER_ADDRESS":            {"LOGIN_MAX_PER_ADDRESS": "-1"},
		"TRUSTED_PROXIES":                  {"TRUSTED_PROXIES": "10.0.0.0/8,not-a-cidr"},
		"PPROF_ADDR":                       {"HTTP_ADDR": "127.0.0.1:8080", "PPROF_ADDR": "127.0.0.1:8080"},
	}
	for name, vars := range cases {
		_, err := Load(env(vars))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != name {
			t.Errorf("%s: err = %v, want a config error naming %s", name, err, name)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: the error must be one line: %q", name, err)
		}
	}
}

func TestRouting(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil || c.RoutingStrategy != RoutingBlast || c.BlastLimit != 0 {
		t.Fatalf("defaults: strategy %q limit %d, %v; want blast, 0", c.RoutingStrategy, c.BlastLimit, err)
	}
	c, err = Load(env(map[string]string{"ROUTING_STRATEGY": "blast", "BLAST_LIMIT": "50"}))
	if err != nil || c.BlastLimit != 50 {
		t.Fatalf("BLAST_LIMIT=50: %d, %v", c.BlastLimit, err)
	}
	if c.OfferBatchSize != 3 || c.OfferBatchInterval != 15*time.Second {
		t.Fatalf("batch defaults: size %d every %v; want 3 every 15s", c.OfferBatchSize, c.OfferBatchInterval)
	}
	for _, s := range []string{RoutingLongestIdle, RoutingLeastLoaded} {
		c, err := Load(env(map[string]string{"ROUTING_STRATEGY": s, "OFFER_BATCH_SIZE": "5", "OFFER_BATCH_SECONDS": "7"}))
		if err != nil || c.RoutingStrategy != s || c.OfferBatchSize != 5 || c.OfferBatchInterval != 7*time.Second {
			t.Errorf("ROUTING_STRATEGY=%s: %+v, %v", s, c, err)
		}
	}
	for _, bad := range []string{"Blast", "longest-idle", "round_robin"} {
		_, err := Load(env(map[string]string{"ROUTING_STRATEGY": bad}))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != "ROUTING_STRATEGY" || !strings.Contains(err.Error(), "must be blast, longest_idle or least_loaded") {
			t.Errorf("ROUTING_STRATEGY=%s: %v, want a config error naming the three strategies", bad, err)
		}
	}
	for _, v := range []string{"0", "1001", "x"} {
		if _, err := Load(env(map[string]string{"OFFER_BATCH_SIZE": v})); err == nil || !strings.Contains(err.Error(), "OFFER_BATCH_SIZE") {
			t.Errorf("OFFER_BATCH_SIZE=%s: %v, want an error naming it", v, err)
		}
	}
}

func TestLoginThrottleConfig(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.LoginMaxFailures != 5 || c.LoginWindow != 900*time.Second || c.LoginMaxPerAddress != 0 || c.TrustedProxies != nil {
		t.Fatalf("defaults: failures %d window %v per address %d proxies %v", c.LoginMaxFailures, c.LoginWindow, c.LoginMaxPerAddress, c.TrustedProxies)
	}
	c, err = Load(env(map[string]string{
		"LOGIN_MAX_FAILURES": "3", "LOGIN_WINDOW_SECONDS": "60", "LOGIN_MAX_PER_ADDRESS": "100",
		"TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,172.16.5.9/12",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	want := "10.0.0.0/8 192.168.1.7/32 2001:db8::/32 172.16.0.0/12"
	if c.LoginMaxFailures != 3 || c.LoginWindow != time.Minute || c.LoginMaxPerAddress != 100 || strings.Join(got, " ") != want {
		t.Fatalf("parsed failures %d window %v per address %d proxies %v; want proxies %s", c.LoginMaxFailures, c.LoginWindow, c.LoginMaxPerAddress, got, want)
	}
}

func TestProdNeedsLongSecret(t *testing.T) {
	if _, err := Load(env(map[string]string{"APP_ENV": "prod", "JWT_SECRET": "short"})); err == nil {
		t.Fatal("prod with a short secret must fail")
	}
	c, err := Load(env(map[string]string{"APP_ENV": "prod", "JWT_SECRET": strings.Repeat("k", 32)}))
	if err != nil || c.JWTSecretRandom {
		t.Fatalf("prod with a good secret: %v", err)
	}
}

func TestVarsListsWhatLoadReads(t *testing.T) {
	vars := Vars()
	for _, want := range []string{"HTTP_ADDR", "APP_ENV", "STORE_BACKEND", "DATABASE_URL", "CACHE_BACKEND",
		"VALKEY_URL", "VALKEY_KEY_PREFIX", "JWT_SECRET", "ADMIN_PHONE", "ADMIN_PASSWORD",
		"SESSION_WARNING_LEAD_SECONDS", "QUEUE_TIMEOUT_SECONDS", "SHUTDOWN_TIMEOUT", "LOG_LEVEL",
		// Read under a condition (PUSH_BACKEND=fcm): listed all the same.
		"FCM_PROJECT_ID", "FCM_CREDENTIALS_FILE", "FCM_ENDPOINT"} {
		if !slices.Contains(vars, want) {
			t.Errorf("Vars() = %v lacks %s", vars, want)
		}
	}
	// A variable Load does not read is not listed.
	if slices.Contains(vars, "PATH") || len(vars) != len(slices.Compact(slices.Sorted(slices.Values(vars)))) {
		t.Errorf("Vars() = %v: lists PATH or a name twice", vars)
	}
	// Whatever the environment, Load reads nothing Vars() lacks: every
	// variable set at once (valid values), and each condition of Vars.
	all := map[string]string{
		"APP_ENV": EnvProd, "JWT_SECRET": strings.Repeat("k", 32), "STORE_BACKEND": StorePostgres,
		"DATABASE_URL": "postgres://127.0.0.1:1/x", "CACHE_BACKEND": CacheValkey, "VALKEY_URL": "redis://127.0.0.1:1",
		"ADMIN_PHONE": "+620000000000", "ADMIN_PASSWORD": "password", "PUSH_BACKEND": PushFCM,
		"FCM_PROJECT_ID": "p", "FCM_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none.json"),
	}
	for _, probe := range append(slices.Clone(varConditions), all) {
		_, _ = Load(func(name string) string {
			if !slices.Contains(vars, name) {
				t.Errorf("Load read %s with %v; Vars() = %v lacks it", name, probe, vars)
			}
			return probe[name]
		})
	}
}

// TestVarsDocumented: the variables in the tables of docs/contract.md (§1,
// §14) and docs/operations.md are exactly Vars().
func TestVarsDocumented(t *testing.T) {
	row := regexp.MustCompile("^\\| *`?([A-Z][A-Z0-9_]*(?:`?, `?[A-Z][A-Z0-9_]*)*)`? *\\|")
	documented := map[string]string{}
	for _, doc := range []string{"../../docs/contract.md", "../../docs/operations.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if m := row.FindStringSubmatch(line); m != nil {
				for name := range strings.SplitSeq(m[1], ",") {
					documented[strings.Trim(strings.TrimSpace(name), "`")] = doc
				}
			}
		}
	}
	vars := Vars()
	for _, name := range vars {
		if documented[name] == "" {
			t.Errorf("%s (config.Vars) is in no variable table of docs/contract.md or docs/operations.md", name)
		}
	}
	for name, doc := range documented {
		if !slices.Contains(vars, name) {
			t.Errorf("%s is documented in %s but the server does not read it (config.Vars)", name, doc)
		}
	}
}

func TestPushConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("sa.json", `{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\n..."}`)
	user := write("user.json", `{"type":"authorized_user","client_id":"x"}`)
	garbage := write("garbage.json", `not json`)
	unreadable := filepath.Join(dir, "missing.json")

	c, err := Load(env(nil))
	if err != nil || c.PushBackend != PushNone || c.FCMEndpoint != DefaultFCMEndpoint {
		t.Fatalf("defaults: backend %q endpoint %q, %v", c.PushBackend, c.FCMEndpoint, err)
	}
	c, err = Load(env(map[string]string{"PUSH_BACKEND": "fcm", "FCM_PROJECT_ID": "p", "FCM_CREDENTIALS_FILE": good, "FCM_ENDPOINT": "http://127.0.0.1:9/"}))
	if err != nil || c.PushBackend != PushFCM || len(c.FCMCredentials) == 0 || c.FCMEndpoint != "http://127.0.0.1:9/" {
		t.Fatalf("fcm: %+v, %v", c, err)
	}
	if _, err := Load(env(map[string]string{"PUSH_BACKEND": "log"})); err != nil {
		t.Fatalf("log: %v", err)
	}

	fcm := func(extra map[string]string) map[string]string {
		m := map[string]string{"PUSH_BACKEND": "fcm", "FCM_PROJECT_ID": "p", "FCM_CREDENTIALS_FILE": good}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name, want string
		vars       map[string]string
	}{
		{"unknown backend", "PUSH_BACKEND", map[string]string{"PUSH_BACKEND": "apns"}},
		{"no project", "FCM_PROJECT_ID", fcm(map[string]string{"FCM_PROJECT_ID": ""})},
		{"no credentials", "FCM_CREDENTIALS_FILE", fcm(map[string]string{"FCM_CREDENTIALS_FILE": ""})},
		{"unreadable file", "FCM_CREDENTIALS_FILE", fcm(map[string]string{"FCM_CREDENTIALS_FILE": unreadable})},
		{"directory", "FCM_CREDENTIALS_FILE", fcm(map[string]string{"FCM_CREDENTIALS_FILE": dir})},
		{"not JSON", "FCM_CREDENTIALS_FILE", fcm(map[string]string{"FCM_CREDENTIALS_FILE": garbage})},
		{"user credentials", "FCM_CREDENTIALS_FILE", fcm(map[string]string{"FCM_CREDENTIALS_FILE": user})},
		{"bad endpoint", "FCM_ENDPOINT", fcm(map[string]string{"FCM_ENDPOINT": "fcm.googleapis.com"})},
	}
	for _, tc := range cases {
		_, err := Load(env(tc.vars))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != tc.want {
			t.Errorf("%s: err = %v, want a config error naming %s", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: the error must be one line: %q", tc.name, err)
		}
	}
}
