package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/halobestie/mitra-availability/adapters/presence"
)

// The hub tells the presence of every connection that opens and closes,
// including those it closes itself at shutdown.
func TestHubRecordsPresence(t *testing.T) {
	p := presence.NewMemory()
	f := newWSFixture(t, HubOptions{Presence: p})
	online := func() bool {
		m, err := p.Online(context.Background(), []string{"user-u"})
		if err != nil {
			t.Fatal(err)
		}
		return m["user-u"]
	}
	waitOnline := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for online() != want {
			if time.Now().After(deadline) {
				t.Fatalf("presence online = %v, want %v", !want, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if online() {
		t.Fatal("online before any connection")
	}
	a := f.dial(t, "token-u", nil)
	b := f.dial(t, "token-u", nil)
	f.waitConns(t, "user-u", 2, 2*time.Second)
	waitOnline(true)
	_ = a.Close(websocket.StatusNormalClosure, "")
	f.waitConns(t, "user-u", 1, 2*time.Second)
	if !online() {
		t.Fatal("offline with one connection left")
	}
	_ = b.Close(websocket.StatusNormalClosure, "")
	waitOnline(false)

	c := f.dial(t, "token-u", nil)
	c.CloseRead(context.Background()) // answer the server's close handshake
	waitOnline(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.hub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if online() {
		t.Error("still online after the hub stopped")
	}
}
