package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// Designs compared, in the order they run: the baseline first.
const (
	designPostgres = "postgres" // the store path (the service's fallback)
	designOriginal = "original" // the original design's keys
	designMirror   = "mirror"   // adapters/valkey
)

// resultKey names one measured figure.
type resultKey struct {
	size   string // "1k", "10k", "100k"
	op     string // "count", "lookup", "heartbeat", "sweep=100", "memory", …
	design string
}

// results holds the figures of this run: ns/op of every benchmark, and the
// bytes per online mitra of the memory benchmarks. The last run of a
// benchmark (the one the framework reports) wins.
var results = struct {
	sync.Mutex
	ns    map[resultKey]float64
	bytes map[resultKey]float64
}{ns: map[resultKey]float64{}, bytes: map[resultKey]float64{}}

func record(m map[resultKey]float64, k resultKey, v float64) {
	results.Lock()
	defer results.Unlock()
	m[k] = v
}

func lookup(m map[resultKey]float64, k resultKey) (float64, bool) {
	results.Lock()
	defer results.Unlock()
	v, ok := m[k]
	return v, ok
}

// finish records the ns/op of a finished b.Loop benchmark and reports its
// speed-up against the baselines measured earlier in the same run:
// speedup-vs-pg is Postgres ns/op divided by this ns/op (the Postgres path is
// 1.0), speedup-vs-original the same against the original design.
func finish(b *testing.B, k resultKey) {
	b.Helper()
	if b.N == 0 {
		return
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	record(results.ns, k, ns)
	if k.design != designPostgres {
		if pg, ok := lookup(results.ns, resultKey{k.size, k.op, designPostgres}); ok {
			b.ReportMetric(pg/ns, "speedup-vs-pg")
		}
	}
	if k.design == designMirror {
		if orig, ok := lookup(results.ns, resultKey{k.size, k.op, designOriginal}); ok {
			b.ReportMetric(orig/ns, "speedup-vs-original")
		}
	}
}

// TestMain runs the tests and benchmarks, then prints the results table when
// benchmarks ran.
func TestMain(m *testing.M) {
	code := m.Run()
	writeReport(os.Stdout)
	os.Exit(code)
}

// sizeNames are the sizes in report order.
var sizeNames = []string{"1k", "10k", "100k"}

// writeReport prints the figures of this run as Markdown tables, with every
// ratio computed against the baseline of the same run.
func writeReport(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	if len(results.ns) == 0 {
		return
	}
	ns := func(size, op, design string) (float64, bool) {
		v, ok := results.ns[resultKey{size, op, design}]
		return v, ok
	}
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }

	p("\n## Mirror benchmark results (ratios from this run)\n\n")
	p("Speed-up = baseline ns/op ÷ ns/op: the Postgres path is 1.0×; higher is faster.\n\n")
	p("| operation | online | Postgres ns/op | original ns/op | mirror ns/op | original vs PG | mirror vs PG | mirror vs original |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, op := range []string{"heartbeat", "count", "lookup"} {
		for _, size := range sizeNames {
			pg, okP := ns(size, op, designPostgres)
			orig, okO := ns(size, op, designOriginal)
			mir, okM := ns(size, op, designMirror)
			if !okP && !okO && !okM {
				continue
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", op, size,
				fmtNS(pg, okP), fmtNS(orig, okO), fmtNS(mir, okM),
				fmtRatio(pg, orig, okP && okO), fmtRatio(pg, mir, okP && okM), fmtRatio(orig, mir, okO && okM))
		}
	}

	p("\n| auto-offline sweep | online | original ns/op | mirror ns/op | mirror vs original | original vs its 1k | mirror vs its 1k |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, op := range []string{"sweep=100", "sweep=1000"} {
		orig1k, okO1 := ns("1k", op, designOriginal)
		mir1k, okM1 := ns("1k", op, designMirror)
		for _, size := range sizeNames {
			orig, okO := ns(size, op, designOriginal)
			mir, okM := ns(size, op, designMirror)
			if !okO && !okM {
				continue
			}
			// Growth against 1k: this ns/op ÷ the 1k ns/op (1.0 = flat).
			p("| %s stale | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(op, "sweep="), size,
				fmtNS(orig, okO), fmtNS(mir, okM), fmtRatio(orig, mir, okO && okM),
				fmtRatio(orig, orig1k, okO && okO1), fmtRatio(mir, mir1k, okM && okM1))
		}
	}

	p("\n| memory | online | original B/mitra | mirror B/mitra | mirror ÷ original | original seed ns/op | mirror seed ns/op |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, size := range sizeNames {
		ob, okO := results.bytes[resultKey{size, "memory", designOriginal}]
		mb, okM := results.bytes[resultKey{size, "memory", designMirror}]
		if !okO && !okM {
			continue
		}
		ratio := "—"
		if okO && okM && ob > 0 {
			ratio = fmt.Sprintf("%.2f", mb/ob)
		}
		on, okON := ns(size, "memory", designOriginal)
		mn, okMN := ns(size, "memory", designMirror)
		p("| per online mitra | %s | %s | %s | %s | %s | %s |\n", size, fmtBytes(ob, okO), fmtBytes(mb, okM), ratio,
			fmtNS(on, okON), fmtNS(mn, okMN))
	}

	p("\nTargets:\n\n")
	target := func(name string, ok, known bool, detail string) {
		mark := "not measured"
		switch {
		case known && ok:
			mark = "met"
		case known:
			mark = "MISSED"
		}
		p("- %s: %s (%s)\n", name, mark, detail)
	}
	for _, op := range []string{"lookup", "count"} {
		pg, okP := ns("100k", op, designPostgres)
		mir, okM := ns("100k", op, designMirror)
		known := okP && okM
		detail := "—"
		if known {
			detail = fmt.Sprintf("%.1f× at 100k", pg/mir)
		}
		target(fmt.Sprintf("%s on Valkey ≥ 10× faster than Postgres at 100k", op), known && pg/mir >= 10, known, detail)
	}
	{
		m1, ok1 := ns("1k", "sweep=100", designMirror)
		m100, ok100 := ns("100k", "sweep=100", designMirror)
		s1000, okS := ns("100k", "sweep=1000", designMirror)
		known := ok1 && ok100 && okS
		detail := "—"
		if known {
			detail = fmt.Sprintf("100 stale: %.2f× from 1k to 100k online; at 100k online: %.1f× from 100 to 1000 stale", m100/m1, s1000/m100)
		}
		// Flat in the online count (within 2×), and clearly growing with S.
		target("sweep cost grows with the stale mitras, not the online ones", known && m100/m1 < 2 && s1000/m100 > 2, known, detail)
	}
	{
		mb, ok := results.bytes[resultKey{"100k", "memory", designMirror}]
		detail := "—"
		if ok {
			detail = fmt.Sprintf("%.1f B per online mitra at 100k", mb)
		}
		target("≤ 150 B of Valkey memory per online mitra", ok && mb <= 150, ok, detail)
	}
	_, _ = io.WriteString(w, sb.String())
}

func fmtNS(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.0f (%.1f ms)", v, v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f (%.0f µs)", v, v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// fmtRatio prints num ÷ den.
func fmtRatio(num, den float64, ok bool) string {
	if !ok || den == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", num/den)
}

func fmtBytes(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}
