package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestRowTurnsOneAtATimePerRowInArrivalOrder(t *testing.T) {
	var r rowTurns
	done, err := r.wait(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another row is not held up.
	other, err := r.wait(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	other()

	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range 3 {
		wg.Go(func() {
			d, err := r.wait(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			d()
		})
		// Let waiter i queue before i+1.
		deadline := time.Now().Add(2 * time.Second)
		for {
			r.mu.Lock()
			n := r.m["a"].n
			r.mu.Unlock()
			if n == i+2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d did not queue", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	mu.Lock()
	if len(order) != 0 {
		t.Fatalf("waiters ran while the row was held: %v", order)
	}
	mu.Unlock()
	done()
	wg.Wait()
	if len(order) != 3 || order[0] != 0 || order[1] != 1 || order[2] != 2 {
		t.Errorf("order = %v, want [0 1 2]", order)
	}
	if n := r.rows(); n != 0 {
		t.Errorf("%d rows still tracked after every turn ended", n)
	}
}

func TestRowTurnsGivesUpWithTheContext(t *testing.T) {
	var r rowTurns
	done, err := r.wait(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.wait(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a held row = %v, want the context's deadline", err)
	}
	done()
	if n := r.rows(); n != 0 {
		t.Errorf("%d rows still tracked", n)
	}
	// The row is free again.
	done, err = r.wait(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	done()
}
