package valkey

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/valkey-io/valkey-go"
)

// Defaults of Config.
const (
	// DefaultDialTimeout bounds one connection attempt.
	DefaultDialTimeout = 2 * time.Second
	// DefaultConnWriteTimeout is how long a connection may wait for an answer
	// before the client drops it and dials again (it also paces the client's
	// keep-alive PINGs), so a hung server is noticed even between calls.
	DefaultConnWriteTimeout = time.Second
)

// Config says how to reach Valkey.
type Config struct {
	// URL is VALKEY_URL: one redis:// or valkey:// URL (rediss:// and
	// valkeys:// for TLS), or several comma-separated addresses (host:port or
	// URLs) of a Valkey Cluster. With several, credentials, TLS and options
	// come from the first; the others only add seed addresses.
	URL string
	// OnDial, when set, is called after each successful dial of a connection:
	// the first ones and every reconnect, so the service can reseed the mirror
	// after the server came back. It must be fast and must not call the client.
	OnDial func()
	// DialTimeout bounds one connection attempt; DefaultDialTimeout when zero.
	DialTimeout time.Duration
	// ConnWriteTimeout is the client's per-connection answer timeout;
	// DefaultConnWriteTimeout when zero.
	ConnWriteTimeout time.Duration
}

// Options turns cfg into the client options Open uses.
func Options(cfg Config) (valkey.ClientOption, error) {
	var parts []string
	for p := range strings.SplitSeq(cfg.URL, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return valkey.ClientOption{}, errors.New("valkey: empty URL")
	}
	var opt valkey.ClientOption
	for i, p := range parts {
		o, err := parseAddress(p)
		if err != nil {
			return valkey.ClientOption{}, fmt.Errorf("valkey: address %d: %w", i+1, err)
		}
		if i == 0 {
			opt = o
			continue
		}
		opt.InitAddress = append(opt.InitAddress, o.InitAddress...)
	}
	if len(opt.InitAddress) > 1 {
		if opt.SelectDB != 0 {
			return valkey.ClientOption{}, errors.New("valkey: a cluster has no database number")
		}
		opt.ShuffleInit = true
	}

	opt.DisableCache = true // the mirror needs no client-side caching, and some servers lack it
	opt.Dialer.Timeout = cfg.DialTimeout
	if opt.Dialer.Timeout <= 0 {
		opt.Dialer.Timeout = DefaultDialTimeout
	}
	opt.ConnWriteTimeout = cfg.ConnWriteTimeout
	if opt.ConnWriteTimeout <= 0 {
		opt.ConnWriteTimeout = DefaultConnWriteTimeout
	}
	if opt.ClientName == "" {
		opt.ClientName = "mitra-availability"
	}
	dial := opt.DialCtxFn
	if dial == nil {
		dial = defaultDial
	}
	onDial := cfg.OnDial
	opt.DialCtxFn = func(ctx context.Context, addr string, d *net.Dialer, tc *tls.Config) (net.Conn, error) {
		conn, err := dial(ctx, addr, d, tc)
		if err == nil && onDial != nil {
			onDial()
		}
		return conn, err
	}
	return opt, nil
}

// parseAddress parses one element of the URL list: a URL, or a bare
// host:port taken as redis://host:port.
func parseAddress(s string) (valkey.ClientOption, error) {
	if !strings.Contains(s, "://") {
		s = "redis://" + s
	}
	opt, err := valkey.ParseURL(s)
	if err != nil {
		// url.Error repeats the URL, password included: keep only its cause.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return valkey.ClientOption{}, err
	}
	return opt, nil
}

// defaultDial is the client's own dial: TCP, or TLS when configured.
func defaultDial(ctx context.Context, addr string, d *net.Dialer, tc *tls.Config) (net.Conn, error) {
	if tc != nil {
		td := tls.Dialer{NetDialer: d, Config: tc}
		return td.DialContext(ctx, "tcp", addr)
	}
	return d.DialContext(ctx, "tcp", addr)
}

// Open connects to Valkey as cfg says and checks that it answers within
// ctx. Several addresses make a cluster client; one address of a cluster node
// is detected as a cluster too. The caller owns the client and closes it.
//
// Open fails at once when Valkey does not answer; a service that must start
// and serve without it uses a Connector instead.
func Open(ctx context.Context, cfg Config) (valkey.Client, error) {
	opt, err := Options(cfg)
	if err != nil {
		return nil, err
	}
	return open(ctx, opt)
}

// open builds a client from opt and checks that it answers within ctx.
func open(ctx context.Context, opt valkey.ClientOption) (valkey.Client, error) {
	client, err := valkey.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("valkey: connect: %w", err)
	}
	if err := client.Do(ctx, client.B().Ping().Build()).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("valkey: ping: %w", err)
	}
	return client, nil
}
