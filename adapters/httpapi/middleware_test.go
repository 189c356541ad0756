package httpapi

import (
	"net/textproto"
	"regexp"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// Generated request ids are UUIDs of version 8, distinct across goroutines
// and across generators (two processes draw different bases).
func TestRequestIDsAreUniqueUUIDs(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newRequestIDs(), newRequestIDs()
	// A base whose last 48 bits are all ones: the counter carries over the
	// bytes and wraps within them, never into the version or variant.
	for i := 10; i < 16; i++ {
		b.base[i] = 0xff
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, g := range []*requestIDs{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids := make([]string, 0, 2500)
				for range 2500 {
					ids = append(ids, g.next())
				}
				mu.Lock()
				defer mu.Unlock()
				for _, id := range ids {
					if !re.MatchString(id) || !saneRequestID(id) {
						t.Errorf("id %q is not a version-8 UUID", id)
					}
					if u, err := uuid.Parse(id); err != nil || u.Version() != 8 || u.Variant() != uuid.RFC4122 {
						t.Errorf("id %q: parsed %v, %v", id, u, err)
					}
					if seen[id] {
						t.Errorf("id %q generated twice", id)
					}
					seen[id] = true
				}
			}()
		}
	}
	wg.Wait()
	if len(seen) != 20000 {
		t.Fatalf("%d distinct ids, want 20000", len(seen))
	}
}

// headerRequestID is the key net/http files X-Request-ID under, so the
// stack finds the client's id and the client finds the echoed one.
func TestHeaderRequestIDIsCanonical(t *testing.T) {
	if got := textproto.CanonicalMIMEHeaderKey(echo.HeaderXRequestID); got != headerRequestID {
		t.Fatalf("canonical key of %s is %s, not %s", echo.HeaderXRequestID, got, headerRequestID)
	}
}
