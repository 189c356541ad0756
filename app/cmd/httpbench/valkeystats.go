package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valkey-io/valkey-go"
)

// ValkeyStats is what the server's Valkey did during one target's
// measurement, from INFO commandstats and INFO stats. The counts are the
// whole server's (its background workers included), so a figure per request
// is an upper bound of what the request path costs.
type ValkeyStats struct {
	// Calls is the number of calls per command (lower case, e.g. "evalsha").
	Calls map[string]int64 `json:"calls"`
	// CommandsPerRequest is every command processed ÷ the target's requests;
	// Valkey counts the commands a script calls too (an EVALSHA whose script
	// calls four commands counts five).
	CommandsPerRequest float64 `json:"commands_per_request"`
	// RequestsPerRead is the target's requests ÷ the read calls the server
	// made on its client sockets: above 1 only when the commands of several
	// requests arrived in one read, i.e. the client pipelined them. (Commands
	// per read would count the commands a script calls, which never cross
	// the socket.)
	RequestsPerRead float64 `json:"requests_per_read"`
	// ServiceConnections counts the connections named mitra-availability at
	// the end of the measurement.
	ServiceConnections int `json:"service_connections"`
	// CPUPerRequestUs is the Valkey server's CPU time (used_cpu_user +
	// used_cpu_sys of INFO cpu, its whole process) ÷ the target's requests,
	// in µs: the cost of the requests' commands on the machine's cores
	// outside the service's process.
	CPUPerRequestUs float64 `json:"cpu_us_per_request"`
}

// valkeyProbe reads the counters of the server's Valkey.
type valkeyProbe struct {
	c valkey.Client
}

func newValkeyProbe(ctx context.Context, url string) (*valkeyProbe, error) {
	opt, err := valkey.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("-valkey-url: %w", err)
	}
	opt.DisableCache = true
	opt.ClientName = "httpbench"
	c, err := valkey.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("valkey: %w", err)
	}
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("valkey: %w", err)
	}
	return &valkeyProbe{c: c}, nil
}

func (p *valkeyProbe) close() { p.c.Close() }

// valkeyCounters is one reading.
type valkeyCounters struct {
	calls     map[string]int64
	processed int64
	reads     int64
	cpu       float64 // seconds
}

func (p *valkeyProbe) read(ctx context.Context) (valkeyCounters, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cs, err := p.c.Do(ctx, p.c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return valkeyCounters{}, fmt.Errorf("INFO commandstats: %w", err)
	}
	st, err := p.c.Do(ctx, p.c.B().Info().Section("stats").Build()).ToString()
	if err != nil {
		return valkeyCounters{}, fmt.Errorf("INFO stats: %w", err)
	}
	cpu, err := p.c.Do(ctx, p.c.B().Info().Section("cpu").Build()).ToString()
	if err != nil {
		return valkeyCounters{}, fmt.Errorf("INFO cpu: %w", err)
	}
	out := valkeyCounters{calls: parseCommandStats(cs), cpu: parseCPU(cpu)}
	fields := parseInfo(st)
	out.processed, _ = strconv.ParseInt(fields["total_commands_processed"], 10, 64)
	out.reads, _ = strconv.ParseInt(fields["total_reads_processed"], 10, 64)
	return out, nil
}

// serviceConnections counts the clients named mitra-availability.
func (p *valkeyProbe) serviceConnections(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := p.c.Do(ctx, p.c.B().ClientList().Build()).ToString()
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.SplitSeq(list, "\n") {
		if strings.Contains(" "+line+" ", " name=mitra-availability ") {
			n++
		}
	}
	return n
}

// delta is what happened between two readings, for requests requests.
func (a valkeyCounters) delta(b valkeyCounters, requests int64) *ValkeyStats {
	s := &ValkeyStats{Calls: map[string]int64{}}
	for _, k := range slices.Sorted(maps.Keys(b.calls)) {
		if d := b.calls[k] - a.calls[k]; d > 0 {
			s.Calls[k] = d
		}
	}
	processed := b.processed - a.processed
	if requests > 0 {
		s.CommandsPerRequest = float64(processed) / float64(requests)
	}
	if reads := b.reads - a.reads; reads > 0 {
		s.RequestsPerRead = float64(requests) / float64(reads)
	}
	if requests > 0 && b.cpu > a.cpu {
		s.CPUPerRequestUs = (b.cpu - a.cpu) / float64(requests) * 1e6
	}
	return s
}

// parseCPU reads used_cpu_user + used_cpu_sys (seconds) of INFO cpu.
func parseCPU(s string) float64 {
	f := parseInfo(s)
	user, _ := strconv.ParseFloat(f["used_cpu_user"], 64)
	sys, _ := strconv.ParseFloat(f["used_cpu_sys"], 64)
	return user + sys
}

// parseInfo reads the key:value lines of an INFO answer.
func parseInfo(s string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// parseCommandStats reads "cmdstat_NAME:calls=N,usec=…" lines.
func parseCommandStats(s string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range parseInfo(s) {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				if c, err := strconv.ParseInt(n, 10, 64); err == nil {
					out[strings.ToLower(name)] = c
				}
			}
		}
	}
	return out
}
