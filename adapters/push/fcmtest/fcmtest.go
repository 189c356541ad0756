// Package fcmtest is a fake of the two Google endpoints the FCM push adapter
// calls: the OAuth2 token endpoint (the JWT-bearer grant of a service
// account) and FCM's HTTP v1 send endpoint. It serves them on one
// httptest.Server, checks what a real server would check (the signed
// assertion, the bearer token, the message), records every message, and
// answers as a test programs it: success, an error status, UNREGISTERED, or
// a delay. The adapter's tests and the e2e suite use it; nothing else should.
package fcmtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Paths the fake serves.
const (
	TokenPath = "/token"
	// Scope is the OAuth2 scope an FCM sender must ask for.
	Scope = "https://www.googleapis.com/auth/firebase.messaging"
	// ClientEmail is the service account of the credentials the fake issues.
	ClientEmail = "push@fake-project.iam.gserviceaccount.com"
)

// Message is one message FCM accepted or refused, as the sender posted it.
type Message struct {
	Project      string
	Token        string            // message.token
	Data         map[string]string // message.data
	Notification map[string]string // message.notification, nil when absent
	Raw          json.RawMessage   // the whole request body
	Status       int               // the status the fake answered
}

// Reply is how the fake answers one send request.
type Reply struct {
	Status int           // 0 means 200
	Body   string        // "" means a body matching Status
	Delay  time.Duration // wait before answering (or until the client gives up)
}

// Unregistered is FCM's answer for a token it no longer knows.
var Unregistered = Reply{Status: http.StatusNotFound, Body: `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`}

// Server is the fake. Its zero value is not usable; call New.
type Server struct {
	*httptest.Server
	key *rsa.PrivateKey

	mu          sync.Mutex
	tokens      map[string]bool // access tokens issued
	tokenCalls  int
	tokenReply  *Reply // nil: issue a token
	tokenTTL    time.Duration
	sendReplies []Reply // consumed in order; then Default
	defReply    Reply
	messages    []Message
	errors      []string // what the fake refused, for the test to report
	notify      chan struct{}
}

// New starts a fake on a loopback port, closed at the end of the test.
func New(t interface {
	Helper()
	Fatalf(string, ...any)
	Cleanup(func())
}) *Server {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("fcmtest: generating a key: %v", err)
	}
	s := &Server{key: key, tokens: make(map[string]bool), tokenTTL: time.Hour, notify: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, s.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.send)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Credentials returns a service-account JSON key whose token_uri points at
// the fake, as FCM_CREDENTIALS_FILE holds it.
func (s *Server) Credentials() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		panic(err) // an RSA key always marshals
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "fake-project",
		"private_key_id": "fake-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   ClientEmail,
		"client_id":      "1234567890",
		"token_uri":      s.URL + TokenPath,
	})
	return b
}

// SetTokenReply makes the token endpoint answer r instead of issuing tokens;
// nil restores issuing.
func (s *Server) SetTokenReply(r *Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenReply = r
}

// SetTokenTTL sets the expires_in of the tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// Reply queues replies for the next send requests, in order.
func (s *Server) Reply(rs ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sendReplies = append(s.sendReplies, rs...)
}

// SetDefault sets the reply once the queued ones are used (200 at first).
func (s *Server) SetDefault(r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defReply = r
}

// RevokeTokens makes every access token issued so far invalid: a send
// with one is answered 401 UNAUTHENTICATED, as FCM answers a revoked or
// expired token.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.tokens {
		s.tokens[tok] = false
	}
}

// TokenCalls is how many token requests the fake answered.
func (s *Server) TokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// Messages returns every send request received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Errors returns what the fake refused as malformed (a test asserts it is empty).
func (s *Server) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errors...)
}

// WaitMessages waits until at least n send requests arrived, or d passed,
// and returns them.
func (s *Server) WaitMessages(n int, d time.Duration) []Message {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.notify:
		case <-deadline.C:
			return s.Messages()
		}
	}
}

func (s *Server) refuse(w http.ResponseWriter, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.errors = append(s.errors, msg)
	s.mu.Unlock()
	http.Error(w, msg, status)
}

// token implements the JWT-bearer grant (RFC 7523) as Google's endpoint does.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenCalls++
	reply := s.tokenReply
	ttl := s.tokenTTL
	s.mu.Unlock()
	if reply != nil {
		s.answer(w, r, *reply)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.refuse(w, http.StatusBadRequest, "token: form: %v", err)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		s.refuse(w, http.StatusBadRequest, "token: grant_type %q", g)
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) {
		return &s.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(s.URL+TokenPath), jwt.WithIssuer(ClientEmail), jwt.WithExpirationRequired())
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "token: assertion: %v", err)
		return
	}
	if scope, _ := claims["scope"].(string); !strings.Contains(" "+scope+" ", " "+Scope+" ") {
		s.refuse(w, http.StatusBadRequest, "token: scope %q lacks %s", scope, Scope)
		return
	}
	tok := "fake-access-" + rand.Text()
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds())})
}

// send implements messages:send.
func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	valid, known := s.tokens[auth]
	known = ok && known
	s.mu.Unlock()
	if known && !valid {
		s.answer(w, r, Reply{Status: http.StatusUnauthorized,
			Body: `{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`})
		return
	}
	if !known {
		s.refuse(w, http.StatusUnauthorized, "send: Authorization %q is not a token the fake issued", r.Header.Get("Authorization"))
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.refuse(w, http.StatusBadRequest, "send: Content-Type %q", ct)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "send: body: %v", err)
		return
	}
	var req struct {
		Message struct {
			Token        string            `json:"token"`
			Data         map[string]string `json:"data"`
			Notification map[string]string `json:"notification"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Message.Token == "" {
		s.refuse(w, http.StatusBadRequest, "send: body %s: %v (or no message.token)", body, err)
		return
	}

	s.mu.Lock()
	reply := s.defReply
	if len(s.sendReplies) > 0 {
		reply, s.sendReplies = s.sendReplies[0], s.sendReplies[1:]
	}
	status := reply.Status
	if status == 0 {
		status = http.StatusOK
	}
	s.messages = append(s.messages, Message{
		Project: r.PathValue("project"), Token: req.Message.Token, Data: req.Message.Data,
		Notification: req.Message.Notification, Raw: body, Status: status,
	})
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if status == http.StatusOK && reply.Body == "" {
		reply.Body = fmt.Sprintf(`{"name":"projects/%s/messages/%s"}`, r.PathValue("project"), rand.Text())
	}
	s.answer(w, r, reply)
}

// answer writes r after its delay (cut short when the client goes away).
func (s *Server) answer(w http.ResponseWriter, req *http.Request, r Reply) {
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-req.Context().Done():
			return
		}
	}
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := r.Body
	if body == "" && status != http.StatusOK {
		body = fmt.Sprintf(`{"error":{"code":%d,"message":"%s","status":"INTERNAL"}}`, status, http.StatusText(status))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
