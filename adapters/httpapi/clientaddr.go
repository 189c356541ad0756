package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// clientAddrExtractor is the one place that decides a request's client
// address (docs/contract.md §14); Echo's c.RealIP() returns it, for the login limit
// per address and the access log alike.
//
// The client address is the TCP peer, unless the peer is in trusted (the
// load balancers and proxies of TRUSTED_PROXIES): then X-Forwarded-For is
// read from the right, each entry having been appended by the hop to its
// right, and the first entry that is not itself a trusted proxy is the
// client. Entries to the left of it were written by the client and are never
// believed. When an entry is not an address the walk stops at the nearest
// address believed so far; when every entry is trusted, the left-most one is
// the client. With no trusted proxies X-Forwarded-For is ignored.
func clientAddrExtractor(trusted []netip.Prefix) echo.IPExtractor {
	return func(r *http.Request) string {
		peer, host, ok := parseHostAddr(r.RemoteAddr)
		if !ok {
			return r.RemoteAddr
		}
		if !inPrefixes(peer, trusted) {
			if peer.Is4() && !strings.Contains(host, ":") {
				// A plain IPv4 peer: netip parses only the canonical dotted
				// quad, so host is peer.String() without allocating it again.
				return host
			}
			return peer.String()
		}
		entries := strings.Split(strings.Join(r.Header.Values(echo.HeaderXForwardedFor), ","), ",")
		client := peer
		for i := len(entries) - 1; i >= 0; i-- {
			a, ok := parseForwarded(entries[i])
			if !ok {
				break
			}
			client = a
			if !inPrefixes(a, trusted) {
				break
			}
		}
		return client.String()
	}
}

// parseHostAddr parses a "host:port" peer address (or a bare address),
// returning the address and the host part it was parsed from.
func parseHostAddr(s string) (netip.Addr, string, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, "", false
	}
	return a.Unmap().WithZone(""), s, true
}

// parseForwarded parses one X-Forwarded-For entry: an address, possibly in
// brackets or with a port.
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
