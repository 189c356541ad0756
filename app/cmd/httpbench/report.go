package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// writeText prints the report as a table.
func writeText(w io.Writer, rep *Report) error {
	title := rep.URL
	if rep.Label != "" {
		title = rep.Label + " at " + rep.URL
	}
	fmt.Fprintf(w, "%s: %d mitras, %d workers, %s per target after %s of warm-up, load generator %s\n\n",
		title, rep.Mitras, rep.Concurrency, rep.Duration, rep.Warmup, rep.Generator)
	// Numbers align right; the target names are padded to align left.
	width := len("target")
	for _, r := range rep.Results {
		width = max(width, len(r.Target))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\ttool\trequests\treq/s\tp50 ms\tp95 ms\tp99 ms\tnon-2xx\ttransport errors\tCPU µs/req\tvs floor\tvs /healthz\t\n", width, "target")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%-*s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t%s\t%s\t\n",
			width, r.Target, r.Tool, r.Requests, r.RPS, r.P50Ms, r.P95Ms, r.P99Ms, r.Non2xx, r.TransportErrors,
			cpuCell(r), ratioCell(r.RatioToFloor, "x"), ratioCell(r.RatioToHealthz, "x"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "first failure of %s: %s\n", r.Target, r.FirstError)
		}
	}
	for _, r := range rep.Results {
		if v := r.Valkey; v != nil {
			fmt.Fprintf(w, "valkey during %s: %.2f commands/request, %.2f requests/read, %.1f µs of Valkey CPU/request, %d service connections, calls %v\n",
				r.Target, v.CommandsPerRequest, v.RequestsPerRead, v.CPUPerRequestUs, v.ServiceConnections, v.Calls)
		}
	}
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// cpuCell formats the server CPU per request, "—" when not measured.
func cpuCell(r Result) string {
	if r.CPUPerRequestUs <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", r.CPUPerRequestUs)
}

// ratioCell formats a ratio with its sign (x or ×), "—" when there is none.
func ratioCell(v float64, sign string) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f%s", v, sign)
}

// writeJSON writes the report to path.
func writeJSON(path string, rep *Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// readReport reads a JSON report written by -json. A report without a label
// is labelled with its file name.
func readReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rep.Results) == 0 {
		return nil, fmt.Errorf("%s: no results", path)
	}
	if rep.Label == "" {
		rep.Label = filepath.Base(path)
	}
	return &rep, nil
}

// writeMarkdown prints reports of the same targets as two Markdown tables:
// req/s with the ratio to /healthz of the same report and, with two reports
// or more, the first report's req/s ÷ the second's; then p50 / p99 latency.
// The targets are those of the first report; one missing from another is "—".
func writeMarkdown(w io.Writer, reps []*Report) error {
	if len(reps) == 0 {
		return errors.New("no reports")
	}
	find := func(rep *Report, target string) (Result, bool) {
		for _, r := range rep.Results {
			if r.Target == target {
				return r, true
			}
		}
		return Result{}, false
	}
	var b strings.Builder
	b.WriteString("| target |")
	align := "| --- |"
	for _, rep := range reps {
		fmt.Fprintf(&b, " %s req/s | vs floor | vs /healthz | CPU µs/req |", rep.Label)
		align += " ---: | ---: | ---: | ---: |"
	}
	if len(reps) > 1 {
		fmt.Fprintf(&b, " %s vs %s |", reps[0].Label, reps[1].Label)
		align += " ---: |"
	}
	b.WriteString("\n" + align + "\n")
	for _, first := range reps[0].Results {
		fmt.Fprintf(&b, "| `%s` |", first.Target)
		for _, rep := range reps {
			if r, ok := find(rep, first.Target); ok {
				fmt.Fprintf(&b, " %s | %s | %s | %s |", group(int64(math.Round(r.RPS))),
					ratioCell(r.RatioToFloor, "×"), ratioCell(r.RatioToHealthz, "×"), cpuCell(r))
			} else {
				b.WriteString(" — | — | — | — |")
			}
		}
		if len(reps) > 1 {
			if r, ok := find(reps[1], first.Target); ok && r.RPS > 0 && first.Rate == 0 {
				fmt.Fprintf(&b, " %.2f× |", first.RPS/r.RPS)
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("\n| target |")
	align = "| --- |"
	for _, rep := range reps {
		fmt.Fprintf(&b, " %s p50 / p99 ms |", rep.Label)
		align += " ---: |"
	}
	b.WriteString("\n" + align + "\n")
	for _, first := range reps[0].Results {
		fmt.Fprintf(&b, "| `%s` |", first.Target)
		for _, rep := range reps {
			if r, ok := find(rep, first.Target); ok {
				fmt.Fprintf(&b, " %.2f / %.2f |", r.P50Ms, r.P99Ms)
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString("\n")
	}

	// What Valkey processed per request, where it was read.
	var vlines []string
	for _, rep := range reps {
		for _, r := range rep.Results {
			if v := r.Valkey; v != nil && r.Requests > 0 {
				var calls []string
				for _, k := range slices.Sorted(maps.Keys(v.Calls)) {
					calls = append(calls, fmt.Sprintf("%s %.2f", k, float64(v.Calls[k])/float64(r.Requests)))
				}
				vlines = append(vlines, fmt.Sprintf("| %s | `%s` | %.2f | %s | %.2f | %.1f | %d |",
					rep.Label, r.Target, v.CommandsPerRequest, strings.Join(calls, ", "), v.RequestsPerRead, v.CPUPerRequestUs, v.ServiceConnections))
			}
		}
	}
	if len(vlines) > 0 {
		b.WriteString("\n| run | target | Valkey commands/request | per command (script calls included) | requests/read | Valkey CPU µs/request | service connections |\n| --- | --- | ---: | --- | ---: | ---: | ---: |\n")
		b.WriteString(strings.Join(vlines, "\n") + "\n")
	}
	var gens []string
	for _, rep := range reps {
		if rep.Generator != "" {
			gens = append(gens, fmt.Sprintf("%s: %s", rep.Label, rep.Generator))
		}
	}
	if len(gens) > 0 {
		fmt.Fprintf(&b, "\nLoad generator (wrk, or httpbench's own Go generator \"go\"): %s.\n", strings.Join(gens, "; "))
	}
	for _, rep := range reps {
		if !rep.Pass {
			fmt.Fprintf(&b, "\n**%s: FAIL**: some measured requests got a non-2xx answer or none.\n", rep.Label)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// group formats n with a space between groups of three digits: 12 345.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
