package push

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/halobestie/mitra-availability/ports"
)

// Defaults of the FCM pusher.
const (
	// DefaultFCMEndpoint is the base URL of FCM's HTTP v1 API.
	DefaultFCMEndpoint = "https://fcm.googleapis.com"
	// FCMScope is the OAuth2 scope of a sender.
	FCMScope = "https://www.googleapis.com/auth/firebase.messaging"
	// DefaultFCMRequestTimeout bounds one HTTP request (token or send).
	DefaultFCMRequestTimeout = 5 * time.Second
	// fcmAttempts is how many times one push is tried when FCM answers a
	// retryable status (429, 5xx) or the request fails in transit.
	fcmAttempts = 3
	// fcmBackoff is the wait before the second attempt; it doubles after.
	fcmBackoff = 200 * time.Millisecond
	// maxErrorBody is how much of an error answer is read.
	maxErrorBody = 64 << 10
)

// FCMConfig configures NewFCM.
type FCMConfig struct {
	// ProjectID is the Firebase project (FCM_PROJECT_ID).
	ProjectID string
	// Credentials is the service-account JSON key (the content of
	// FCM_CREDENTIALS_FILE). Its token_uri is where access tokens come from.
	Credentials []byte
	// Endpoint is the base URL of the API (FCM_ENDPOINT); default DefaultFCMEndpoint.
	Endpoint string
	// TokenURL, when set, overrides the credentials' token_uri.
	TokenURL string
	// RequestTimeout bounds each HTTP request; default DefaultFCMRequestTimeout.
	RequestTimeout time.Duration
	// Transport is the HTTP transport (default http.DefaultTransport).
	Transport http.RoundTripper
	// Log receives the token fetches; nil discards.
	Log *slog.Logger
}

// FCM sends notifications through Firebase Cloud Messaging's HTTP v1 API
// (POST {endpoint}/v1/projects/{project}/messages:send), authorised by an
// OAuth2 access token of a service account: golang.org/x/oauth2/google signs
// the JWT-bearer assertion with the account's key, and the token is kept
// until shortly before it expires, so a token request happens about once an
// hour, not once per push. A 401 from FCM (the token was revoked, or the
// clocks disagree) drops the cached token; the retry fetches a new one.
//
// A push is tried up to three times while FCM answers 429 or 5xx, or the
// request fails in transit, within the caller's deadline (Retry-After is
// honoured when it fits). A token FCM reports UNREGISTERED is
// ports.ErrPushTokenUnregistered.
type FCM struct {
	sendURL string
	tokens  *cachedToken
	client  *http.Client
}

// cachedToken keeps an access token until shortly before it expires (as
// oauth2.ReuseTokenSource does), and forgets it when FCM refuses it (401),
// so that the next send fetches a new one instead of failing until expiry.
type cachedToken struct {
	// src returns a token source that fetches a new token (the source of
	// jwt.Config caches its token itself: a new one per fetch forgets it).
	src func() oauth2.TokenSource

	mu  sync.Mutex
	tok *oauth2.Token
}

// Token returns the cached token while valid, else a new one.
func (c *cachedToken) Token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Valid() {
		return c.tok, nil
	}
	t, err := c.src().Token()
	if err != nil {
		return nil, err
	}
	c.tok = t
	return t, nil
}

// invalidate forgets bad if it is still the cached token (a concurrent send
// may have replaced it already).
func (c *cachedToken) invalidate(bad *oauth2.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && bad != nil && c.tok.AccessToken == bad.AccessToken {
		c.tok = nil
	}
}

var _ ports.Pusher = (*FCM)(nil)

// NewFCM checks cfg (the key must be a service account's, with a private
// key that parses) and returns the pusher. It makes no request.
func NewFCM(cfg FCMConfig) (*FCM, error) {
	if strings.TrimSpace(cfg.ProjectID) == "" {
		return nil, errors.New("fcm: the project id is empty")
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultFCMEndpoint
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fcm: endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultFCMRequestTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	jwtCfg, err := google.JWTConfigFromJSON(cfg.Credentials, FCMScope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	if jwtCfg.Email == "" {
		return nil, errors.New("fcm: credentials: client_email is empty")
	}
	if err := checkPrivateKey(jwtCfg.PrivateKey); err != nil {
		return nil, fmt.Errorf("fcm: credentials: private_key: %w", err)
	}
	if cfg.TokenURL != "" {
		jwtCfg.TokenURL = cfg.TokenURL
	}
	client := &http.Client{Transport: cfg.Transport, Timeout: cfg.RequestTimeout}
	// The token source keeps this context for its token requests: it only
	// carries the HTTP client, whose timeout bounds each of them.
	tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	return &FCM{
		sendURL: strings.TrimSuffix(cfg.Endpoint, "/") + "/v1/projects/" + url.PathEscape(cfg.ProjectID) + "/messages:send",
		tokens:  &cachedToken{src: func() oauth2.TokenSource { return jwtCfg.TokenSource(tokenCtx) }},
		client:  client,
	}, nil
}

// checkPrivateKey parses a PEM RSA key as the JWT signer will, so that a
// broken key fails at start rather than at every push.
func checkPrivateKey(key []byte) error {
	block, _ := pem.Decode(key)
	if block == nil {
		return errors.New("not a PEM block")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return errors.New("neither a PKCS #8 nor a PKCS #1 private key")
	}
	return nil
}

// Push implements ports.Pusher.
func (f *FCM) Push(ctx context.Context, p ports.Push) error {
	body, err := json.Marshal(fcmRequest{Message: toFCMMessage(p)})
	if err != nil {
		return fmt.Errorf("fcm: encoding the message: %w", err)
	}
	backoff := fcmBackoff
	for attempt := 1; ; attempt++ {
		retryAfter, err := f.send(ctx, body)
		var re *retryableError
		if err == nil || !errors.As(err, &re) || attempt == fcmAttempts {
			return err
		}
		wait := max(backoff, retryAfter)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return err // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

// retryableError is a failure worth another attempt.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// send makes one attempt; for a 429 or 503 it also returns the Retry-After.
func (f *FCM) send(ctx context.Context, body []byte) (retryAfter time.Duration, err error) {
	tok, err := f.tokens.Token()
	if err != nil {
		return 0, &retryableError{fmt.Errorf("fcm: access token: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.sendURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("fcm: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	tok.SetAuthHeader(req)
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("fcm: send: %w", ctx.Err())
		}
		return 0, &retryableError{fmt.Errorf("fcm: send: %w", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return 0, nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	fe := parseFCMError(resp.StatusCode, raw)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		f.tokens.invalidate(tok)
		return 0, &retryableError{fe}
	case fe.unregistered():
		return 0, fmt.Errorf("fcm: %w: %v", ports.ErrPushTokenUnregistered, fe)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return parseRetryAfter(resp.Header.Get("Retry-After")), &retryableError{fe}
	}
	return 0, fe
}

// fcmError is an error answer of the API.
type fcmError struct {
	HTTPStatus int
	Status     string // error.status, such as NOT_FOUND or UNREGISTERED
	Message    string
	Codes      []string // error.details[].errorCode, such as UNREGISTERED
}

func (e *fcmError) Error() string {
	return fmt.Sprintf("fcm: HTTP %d %s %v: %s", e.HTTPStatus, e.Status, e.Codes, e.Message)
}

// unregistered reports whether FCM says the token is no longer valid.
func (e *fcmError) unregistered() bool {
	if e.Status == "UNREGISTERED" {
		return true
	}
	for _, c := range e.Codes {
		if c == "UNREGISTERED" {
			return true
		}
	}
	return false
}

func parseFCMError(status int, raw []byte) *fcmError {
	var body struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
			Details []struct {
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	fe := &fcmError{HTTPStatus: status}
	if err := json.Unmarshal(raw, &body); err != nil {
		fe.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
		return fe
	}
	fe.Status, fe.Message = body.Error.Status, body.Error.Message
	for _, d := range body.Error.Details {
		if d.ErrorCode != "" {
			fe.Codes = append(fe.Codes, d.ErrorCode)
		}
	}
	return fe
}

// parseRetryAfter reads a Retry-After of seconds (the form FCM uses); 0 otherwise.
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// The request body of messages:send.
type fcmRequest struct {
	Message fcmMessage `json:"message"`
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Data         map[string]string `json:"data"`
	Notification *fcmNotification  `json:"notification,omitempty"`
	Android      fcmAndroid        `json:"android"`
	APNS         fcmAPNS           `json:"apns"`
}

type fcmNotification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type fcmAndroid struct {
	Priority string `json:"priority"`
}

type fcmAPNS struct {
	Headers map[string]string `json:"headers"`
	Payload map[string]any    `json:"payload"`
}

// toFCMMessage builds the message of p: a data message carrying the event's
// type, its event_id and its WebSocket frame (data values must be strings), sent with high
// priority so that a backgrounded app wakes; the events a person must see
// (an offer, the three-minute warning, the end) also carry a notification
// that the system shows while the app is not running.
func toFCMMessage(p ports.Push) fcmMessage {
	m := fcmMessage{
		Token:   p.Device.Token,
		Data:    map[string]string{"type": p.Event.Type, "event": string(p.Event.Payload)},
		Android: fcmAndroid{Priority: "HIGH"},
		APNS: fcmAPNS{
			Headers: map[string]string{"apns-priority": "10"},
			Payload: map[string]any{"aps": map[string]any{"content-available": 1}},
		},
	}
	if len(p.Event.Seqs) == 1 {
		// The recipient's event_id, also inside the frame: an app resumes
		// its WebSocket (or GET /api/events) after it.
		m.Data["event_id"] = strconv.FormatInt(p.Event.Seqs[0], 10)
	}
	if n, ok := notifications[p.Event.Type]; ok {
		m.Notification = &n
	}
	return m
}

// notifications are the texts of the events a person must see.
var notifications = map[string]fcmNotification{
	ports.EventSessionOffer:   {Title: "New chat request", Body: "A customer is waiting for you. Open the app to accept."},
	ports.EventSessionWarning: {Title: "3 minutes left", Body: "Your chat session ends in three minutes."},
	ports.EventSessionEnded:   {Title: "Chat ended", Body: "Your chat session has ended."},
}
