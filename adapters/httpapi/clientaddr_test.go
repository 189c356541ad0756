package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: the peer, X-Forwarded-For ignored", nil, "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer: X-Forwarded-For ignored", trusted, "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer without the header", trusted, "10.1.2.3:5555", nil, "10.1.2.3"},
		{"trusted peer: the entry it appended", trusted, "10.1.2.3:5555", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a forged left entry is not believed", trusted, "10.1.2.3:5555", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", trusted, "10.1.2.3:5555", []string{"1.2.3.4, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", trusted, "10.1.2.3:5555", []string{"1.2.3.4", "198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"garbage stops at the nearest believed address", trusted, "10.1.2.3:5555", []string{"198.51.100.1, bogus, 10.9.9.9"}, "10.9.9.9"},
		{"every hop trusted: the left-most", trusted, "10.1.2.3:5555", []string{"10.7.7.7, 10.9.9.9"}, "10.7.7.7"},
		{"entry with a port", trusted, "10.1.2.3:5555", []string{"198.51.100.1:4321"}, "198.51.100.1"},
		{"IPv6 peer and bracketed entry", trusted, "[2001:db8::1]:443", []string{"[2001:db9::5]"}, "2001:db9::5"},
		{"IPv4-mapped peer", trusted, "[::ffff:10.1.2.3]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"untrusted IPv4-mapped peer: unmapped", trusted, "[::ffff:203.0.113.9]:80", nil, "203.0.113.9"},
		{"untrusted IPv6 peer: canonical form", nil, "[2001:DB8:0:0::1]:443", nil, "2001:db8::1"},
		{"untrusted IPv6 peer with a zone: without it", nil, "[fe80::1%eth0]:443", nil, "fe80::1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/auth/login", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddrExtractor(tc.trusted)(r); got != tc.want {
				t.Fatalf("client address = %q, want %q", got, tc.want)
			}
		})
	}
}
