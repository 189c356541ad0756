package app

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer records what reaches the output, one entry per write.
type syncBuffer struct {
	mu     sync.Mutex
	writes []string
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = append(b.writes, string(p))
	return len(p), nil
}

func (b *syncBuffer) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.writes...)
}

func TestLoggerBuffersInfoAndWritesWarnAtOnce(t *testing.T) {
	out := &syncBuffer{}
	w := newBufferedWriter(out, 50*time.Millisecond, 4096)
	log := newLogger("prod", "info", w)

	log.Info("one", "n", 1)
	log.Info("two", "n", 2)
	log.Debug("hidden")
	if got := out.snapshot(); len(got) != 0 {
		t.Fatalf("info lines written at once: %q", got)
	}
	// A warn line goes out at once, after the lines before it, in one write.
	log.Warn("three")
	got := out.snapshot()
	if len(got) != 1 {
		t.Fatalf("after the warn line: %d writes %q, want 1", len(got), got)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(got[0]), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		msgs = append(msgs, m["msg"].(string))
	}
	if strings.Join(msgs, ",") != "one,two,three" {
		t.Fatalf("lines %v, want one,two,three in order", msgs)
	}

	// An info line alone is written within the interval.
	log.With("k", "v").Info("four")
	deadline := time.Now().Add(5 * time.Second)
	for len(out.snapshot()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the info line was not written within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := out.snapshot(); !strings.Contains(got[1], `"msg":"four"`) || !strings.Contains(got[1], `"k":"v"`) {
		t.Fatalf("second write %q", got[1])
	}
	// Error lines of a derived logger flush too.
	log.WithGroup("g").Info("five")
	log.WithGroup("g").Error("six")
	if got := out.snapshot(); len(got) != 3 || !strings.Contains(got[2], "five") || !strings.Contains(got[2], "six") {
		t.Fatalf("after the error line: %q", got)
	}
}

func TestBufferedWriterBoundsItsBuffer(t *testing.T) {
	out := &syncBuffer{}
	w := newBufferedWriter(out, time.Hour, 100)
	line := bytes.Repeat([]byte("x"), 39)
	line = append(line, '\n')
	w.Write(line)
	w.Write(line)
	if len(out.snapshot()) != 0 {
		t.Fatal("written before the buffer was full")
	}
	w.Write(line) // 120 > 100: the first two go out, this one waits
	if got := out.snapshot(); len(got) != 1 || len(got[0]) != 80 {
		t.Fatalf("writes %q", got)
	}
	big := bytes.Repeat([]byte("y"), 150)
	w.Write(big) // larger than the buffer: written through, after what was held
	if got := out.snapshot(); len(got) != 3 || len(got[1]) != 40 || len(got[2]) != 150 {
		t.Fatalf("writes %d: %q", len(got), got)
	}
	w.Flush()
	w.Flush()
	if got := out.snapshot(); len(got) != 3 {
		t.Fatalf("an empty flush wrote: %q", got)
	}

	// Concurrent writers: every line arrives whole.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				w.Write([]byte(strings.Repeat(string(rune('a'+g)), 9) + "\n"))
			}
		}()
	}
	wg.Wait()
	w.Flush()
	all := strings.Join(out.snapshot()[3:], "")
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if len(l) != 9 || strings.Count(l, l[:1]) != 9 {
			t.Fatalf("torn line %q", l)
		}
	}
}
