package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobestie/mitra-availability/client"
)

// api sends the setup requests (docs/contract.md §3–§5) through the typed
// client of package client, and polls for readiness.
type api struct {
	hc   *http.Client
	base string
	c    *client.ClientWithResponses
}

func newAPI(hc *http.Client, base string) (*api, error) {
	c, err := client.New(base, hc)
	if err != nil {
		return nil, err
	}
	return &api{hc: hc, base: base, c: c}, nil
}

// answered checks a typed answer: an error, or another status than want, is
// an error naming the route and both statuses.
func answered(what string, hr *http.Response, body []byte, err error, want int) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if hr.StatusCode != want {
		return fmt.Errorf("%s: HTTP %d, want %d: %.200s", what, hr.StatusCode, want, body)
	}
	return nil
}

// online takes the mitra whose access token is token online.
func (a *api) online(ctx context.Context, token string) error {
	r, err := a.c.MitraGoOnlineWithResponse(ctx, client.WithToken(token))
	if err != nil {
		return fmt.Errorf("POST /api/mitra/status/online: %w", err)
	}
	return answered("POST /api/mitra/status/online", r.HTTPResponse, r.Body, nil, http.StatusOK)
}

// offline takes the mitra whose access token is token offline.
func (a *api) offline(ctx context.Context, token string) error {
	r, err := a.c.MitraGoOfflineWithResponse(ctx, client.WithToken(token))
	if err != nil {
		return fmt.Errorf("POST /api/mitra/status/offline: %w", err)
	}
	return answered("POST /api/mitra/status/offline", r.HTTPResponse, r.Body, nil, http.StatusOK)
}

// status sends GET path and reads its status.
func (a *api) status(ctx context.Context, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
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
		status, err := a.status(reqCtx, path)
		cancelReq()
		if err == nil && status == want {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("GET %s: HTTP %d, want %d", path, status, want)
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
	r, err := a.c.LoginWithResponse(ctx, client.LoginRequest{Phone: phone, Password: password})
	if err != nil {
		return "", "", fmt.Errorf("POST /api/auth/login: %w", err)
	}
	if err := answered("POST /api/auth/login", r.HTTPResponse, r.Body, nil, http.StatusOK); err != nil {
		return "", "", err
	}
	if r.JSON200.AccessToken == "" || r.JSON200.User.ID == "" {
		return "", "", fmt.Errorf("login of %s: no access token or user id in the answer", phone)
	}
	return r.JSON200.AccessToken, r.JSON200.User.ID, nil
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
		r, err := a.c.CreateMitraWithResponse(ctx, client.CreateMitraRequest{
			Phone: phone, Password: password, DisplayName: fmt.Sprintf("Bench Mitra %d", i),
		}, client.WithToken(admin))
		if err != nil {
			return fmt.Errorf("POST /api/admin/mitras: %w", err)
		}
		if err := answered("POST /api/admin/mitras", r.HTTPResponse, r.Body, nil, http.StatusCreated); err != nil {
			return err
		}
		token, id, err := a.login(ctx, phone, password)
		if err != nil {
			return err
		}
		if id != r.JSON201.ID {
			return fmt.Errorf("mitra %s: login answered user id %q, the creation %q", phone, id, r.JSON201.ID)
		}
		if err := a.online(ctx, token); err != nil {
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
		r, err := a.c.CreateCustomerWithResponse(ctx, client.CreateCustomerRequest{
			Phone: phone, Password: password, DisplayName: fmt.Sprintf("Bench Customer %d", i),
		})
		if err != nil {
			return fmt.Errorf("POST /api/customers: %w", err)
		}
		if err := answered("POST /api/customers", r.HTTPResponse, r.Body, nil, http.StatusCreated); err != nil {
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
		return a.offline(ctx, f.mitras[i].token)
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
