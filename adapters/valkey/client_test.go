package valkey_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	vk "github.com/halobestie/mitra-availability/adapters/valkey"
)

func TestOptions(t *testing.T) {
	tests := []struct {
		url      string
		addrs    []string
		cluster  bool
		user, pw string
		db       int
		tls      bool
	}{
		{url: "redis://127.0.0.1:6380", addrs: []string{"127.0.0.1:6380"}},
		{url: "valkey://cache.internal", addrs: []string{"cache.internal:6379"}},
		{url: "redis://u:p%40ss@10.0.0.1:7000/3", addrs: []string{"10.0.0.1:7000"}, user: "u", pw: "p@ss", db: 3},
		{url: "rediss://:pw@cache:6390", addrs: []string{"cache:6390"}, pw: "pw", tls: true},
		{url: "127.0.0.1:7001", addrs: []string{"127.0.0.1:7001"}},
		{url: " a:7001, b:7002 ,c:7003 ", addrs: []string{"a:7001", "b:7002", "c:7003"}, cluster: true},
		{url: "redis://:pw@a:7001,redis://b:7002,c", addrs: []string{"a:7001", "b:7002", "c:6379"}, cluster: true, pw: "pw"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			opt, err := vk.Options(vk.Config{URL: tc.url})
			if err != nil {
				t.Fatalf("Options: %v", err)
			}
			if !slices.Equal(opt.InitAddress, tc.addrs) {
				t.Errorf("InitAddress = %v, want %v", opt.InitAddress, tc.addrs)
			}
			if opt.ShuffleInit != tc.cluster {
				t.Errorf("ShuffleInit = %v, want %v", opt.ShuffleInit, tc.cluster)
			}
			if opt.Username != tc.user || opt.Password != tc.pw || opt.SelectDB != tc.db {
				t.Errorf("user %q pw %q db %d, want %q %q %d", opt.Username, opt.Password, opt.SelectDB, tc.user, tc.pw, tc.db)
			}
			if (opt.TLSConfig != nil) != tc.tls {
				t.Errorf("TLS = %v, want %v", opt.TLSConfig != nil, tc.tls)
			}
			if !opt.DisableCache {
				t.Error("DisableCache is false")
			}
			if opt.ConnWriteTimeout != vk.DefaultConnWriteTimeout || opt.Dialer.Timeout != vk.DefaultDialTimeout {
				t.Errorf("timeouts = %v, %v; want the defaults", opt.ConnWriteTimeout, opt.Dialer.Timeout)
			}
			if opt.DialCtxFn == nil {
				t.Error("no dial hook")
			}
		})
	}
}

func TestOptionsOverrides(t *testing.T) {
	opt, err := vk.Options(vk.Config{URL: "redis://x:1", DialTimeout: 3 * time.Second, ConnWriteTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if opt.Dialer.Timeout != 3*time.Second || opt.ConnWriteTimeout != 4*time.Second {
		t.Errorf("timeouts = %v, %v; want 3s, 4s", opt.Dialer.Timeout, opt.ConnWriteTimeout)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, url := range []string{
		"",
		" , ",
		"http://cache:6379",
		"redis://a:1/2,b:2",     // a cluster has no database number
		"redis://u:secret@[::1", // malformed: the password must not leak
		"redis://a:1,ftp://b:2", // bad scheme in a later address
		"redis://a:1/x",         // bad database number
		"redis://a:1/1/2",       // bad path
	} {
		_, err := vk.Options(vk.Config{URL: url})
		if err == nil {
			t.Errorf("Options(%q): no error", url)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Options(%q) error leaks the password: %v", url, err)
		}
	}
}

func TestOpenCallsOnDial(t *testing.T) {
	mr := miniredis.RunT(t)
	var dials atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := vk.Open(ctx, vk.Config{URL: "valkey://" + mr.Addr(), OnDial: func() { dials.Add(1) }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	if dials.Load() == 0 {
		t.Error("OnDial was not called")
	}
	if err := c.Do(ctx, c.B().Set().Key("k").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, _ := mr.Get("k"); got != "v" {
		t.Errorf("miniredis holds %q, want v", got)
	}
}
