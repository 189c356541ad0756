package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopRunsWakesAndStops(t *testing.T) {
	var runs atomic.Int32
	started := make(chan struct{}, 10)
	l, err := New("test", time.Hour, func(ctx context.Context) {
		runs.Add(1)
		started <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err == nil {
		t.Fatal("second Start must fail")
	}
	l.Wake()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("Wake did not run the loop")
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := runs.Load()
	l.Wake()
	time.Sleep(20 * time.Millisecond)
	if runs.Load() != n {
		t.Fatal("ran after Stop")
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal("second Stop must be a no-op")
	}
}

func TestStopWaitsForRunningRun(t *testing.T) {
	release := make(chan struct{})
	inRun := make(chan struct{})
	var finished atomic.Bool
	l, _ := New("slow", time.Millisecond, func(ctx context.Context) {
		select {
		case inRun <- struct{}{}:
		default:
		}
		<-release
		finished.Store(true)
	})
	_ = l.Start(context.Background())
	<-inRun
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Stop(ctx); err == nil {
		t.Fatal("Stop must report a run that outlives the stop context")
	}
	close(release)
	time.Sleep(10 * time.Millisecond)
	if !finished.Load() {
		t.Fatal("run did not finish")
	}
}

func TestIntervalMustBePositive(t *testing.T) {
	if _, err := New("x", 0, func(context.Context) {}); err == nil {
		t.Fatal("want error")
	}
}
