package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// api sends the setup requests (docs/contract.md §3–§5).
type api struct {
	hc   *http.Client
	base string
}

// call sends a JSON request and decodes the answer into out (when not nil).
// An answer with another status than want is an error naming both.
func (a *api) call(ctx context.Context, method, path, token string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encoding the body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d, want %d: %.200s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// waitReady polls GET /readyz until it answers 200, for at most wait.
func (a *api) waitReady(ctx context.Context, wait time.Duration) error {
	return a.waitStatus(ctx, wait, "/readyz", http.StatusOK)
}

// waitStatus polls GET path until it answers want, for at most wait.
func (a *api) waitStatus(ctx context.Context, wait time.Duration, path string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		reqCtx, cancelReq := context.WithTimeout(ctx, time.Second)
		err := a.call(reqCtx, http.MethodGet, path, "", nil, nil, want)
		cancelReq()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server at %s is not ready after %s: %w", a.base, wait, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// login returns the access token and user id of phone.
func (a *api) login(ctx context.Context, phone, password string) (token, id string, err error) {
	var out struct {
		AccessToken string `json:"access_token"`
		User        struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := a.call(ctx, http.MethodPost, "/api/auth/login", "", map[string]string{"phone": phone, "password": password}, &out, http.StatusOK); err != nil {
		return "", "", err
	}
	if out.AccessToken == "" || out.User.ID == "" {
		return "", "", fmt.Errorf("login of %s: no access token or user id in the answer", phone)
	}
	return out.AccessToken, out.User.ID, nil
}

// account is a logged-in mitra.
type account struct {
	id, token string
}

// fixtures are the accounts a run creates.
type fixtures struct {
	mitras    []account
	customers []string // access tokens
}

// setup creates and logs in n mitras (each then goes online) and customers
// customers (at least one). Their phone numbers carry a random run tag, so that runs against
// the same server do not collide.
func setup(ctx context.Context, a *api, n, customers, concurrency int, adminPhone, adminPassword string) (*fixtures, error) {
	admin, _, err := a.login(ctx, adminPhone, adminPassword)
	if err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	tag, err := rand.Int(rand.Reader, big.NewInt(10_000))
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 12)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	password := "httpbench-" + hex.EncodeToString(secret)

	f := &fixtures{mitras: make([]account, n)}
	err = parallel(ctx, n, concurrency, func(ctx context.Context, i int) error {
		phone := fmt.Sprintf("+629%04d%06d", tag.Int64(), i)
		var created struct {
			ID string `json:"id"`
		}
		body := map[string]any{"phone": phone, "password": password, "display_name": fmt.Sprintf("Bench Mitra %d", i)}
		if err := a.call(ctx, http.MethodPost, "/api/admin/mitras", admin, body, &created, http.StatusCreated); err != nil {
			return err
		}
		token, id, err := a.login(ctx, phone, password)
		if err != nil {
			return err
		}
		if id != created.ID {
			return fmt.Errorf("mitra %s: login answered user id %q, the creation %q", phone, id, created.ID)
		}
		if err := a.call(ctx, http.MethodPost, "/api/mitra/status/online", token, nil, nil, http.StatusOK); err != nil {
			return err
		}
		f.mitras[i] = account{id: id, token: token}
		return nil
	})
	if err != nil {
		return nil, err
	}

	f.customers = make([]string, max(customers, 1))
	err = parallel(ctx, len(f.customers), concurrency, func(ctx context.Context, i int) error {
		phone := fmt.Sprintf("+628%04d%06d", tag.Int64(), i)
		body := map[string]string{"phone": phone, "password": password, "display_name": fmt.Sprintf("Bench Customer %d", i)}
		if err := a.call(ctx, http.MethodPost, "/api/customers", "", body, nil, http.StatusCreated); err != nil {
			return err
		}
		token, _, err := a.login(ctx, phone, password)
		f.customers[i] = token
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// teardown takes the mitras offline.
func teardown(ctx context.Context, a *api, f *fixtures, concurrency int) error {
	return parallel(ctx, len(f.mitras), concurrency, func(ctx context.Context, i int) error {
		return a.call(ctx, http.MethodPost, "/api/mitra/status/offline", f.mitras[i].token, nil, nil, http.StatusOK)
	})
}

// parallel calls fn(ctx, i) for i in [0, n) with at most concurrency calls at
// a time. It stops at the first error, cancels the calls in flight, waits for
// them and returns that error.
func parallel(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err() // the caller's context ended before every call was made
}
