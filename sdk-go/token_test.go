package poolswitch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const callerToken = "tok-caller-SECRET-789"

// TestMain keeps a POOLSWITCH_TOKEN of the shell running the tests away from the clients.
func TestMain(m *testing.M) {
	os.Unsetenv(TokenEnv)
	os.Exit(m.Run())
}

// everyCall answers each call of everyCallOf.
func everyCall(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/events":
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
	case "/metrics":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "poolswitch_keys 2\n")
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok","keys":[]}`)
	}
}

// everyCallOf makes one call of each kind; it returns how many requests that sent.
func everyCallOf(t *testing.T, c *Client) int {
	t.Helper()
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(c.GetJSON(ctx, "/v1/models", nil))
	check(c.PostJSON(ctx, "/v1/chat/completions", map[string]int{"n": 1}, nil))
	_, err := c.Do(ctx, &Request{Method: "DELETE", Path: "/v1/files/1"})
	check(err)
	s, err := c.Stream(ctx, &Request{Method: "POST", Path: "/events"})
	check(err)
	for s.Next() {
	}
	check(s.Err())
	s.Close()
	_, err = c.Health(ctx)
	check(err)
	_, err = c.Status(ctx)
	check(err)
	_, err = c.Metrics(ctx)
	check(err)
	return 7
}

func TestTokenOnEveryRequest(t *testing.T) {
	tests := []struct {
		name string
		env  string
		opts []Option
		want string // "" for no header
	}{
		{name: "WithToken", opts: []Option{WithToken(callerToken)}, want: callerToken},
		{name: "from POOLSWITCH_TOKEN", env: callerToken, want: callerToken},
		{name: "WithToken wins over the environment", env: "other", opts: []Option{WithToken(callerToken)}, want: callerToken},
		{name: "none", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(TokenEnv, tt.env)
			srv := newRecorder(t, everyCall)
			n := everyCallOf(t, NewClient(srv.URL, tt.opts...))
			seen := srv.requests()
			if len(seen) != n {
				t.Fatalf("%d requests, want %d", len(seen), n)
			}
			for _, r := range seen {
				if got := r.Header.Get("X-Poolswitch-Token"); got != tt.want {
					t.Errorf("%s %s: x-poolswitch-token = %q, want %q", r.Method, r.RequestURI, got, tt.want)
				}
				if got := r.Header.Get("Authorization"); got != "" {
					t.Errorf("%s %s: Authorization = %q, want none", r.Method, r.RequestURI, got)
				}
			}
		})
	}
}

func TestInvalidTokenInTheEnvironment(t *testing.T) {
	t.Setenv(TokenEnv, callerToken+" x")
	srv := newRecorder(t, everyCall)
	err := NewClient(srv.URL).GetJSON(context.Background(), "/v1/models", nil)
	e := asError(t, err, KindInvalid)
	if !strings.Contains(err.Error(), TokenEnv) || strings.Contains(fmt.Sprintf("%+v %#v", err, e), "SECRET") {
		t.Errorf("error = %v, want it to name %s without the value", err, TokenEnv)
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
	if err := NewClient(srv.URL, WithToken("fine")).GetJSON(context.Background(), "/", nil); err != nil {
		t.Errorf("WithToken replaces the environment's token: %v", err)
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	c := NewClient("http://127.0.0.1:1", WithToken(callerToken), WithMaxRetries(0))
	shown := fmt.Sprintf("%v %+v %#v %v %+v %#v %s", c, c, c, *c, *c, *c, c.token)
	srv := newRecorder(t, answer(401,
		`{"error":{"type":"poolswitch_error","code":"unauthorized","message":"no caller token","retry_after":null}}`,
		"X-Poolswitch-Error", CodeUnauthorized))
	_, proxyErr := NewClient(srv.URL, WithToken(callerToken)).Do(context.Background(), &Request{Path: "/v1/x"})
	asError(t, proxyErr, KindProxy)
	_, connErr := c.Do(context.Background(), &Request{Path: "/v1/x"})
	asError(t, connErr, KindConnection)
	for _, err := range []error{proxyErr, connErr} {
		shown += fmt.Sprintf(" %v %+v %#v %s", err, err, err, err.Error())
	}
	if strings.Contains(shown, callerToken) || strings.Contains(shown, "SECRET") {
		t.Errorf("the token shows in: %s", shown)
	}
}

func TestExhaustionAnswers(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		headers    []string
		retryAfter string
		wantTries  int
		wantAfter  time.Duration
	}{
		{"429, x-should-retry false, a month away", 429, []string{"X-Should-Retry", "false"}, "2617953.5", 1,
			2617953500 * time.Millisecond},
		{"429, x-should-retry false, no key returns", 429, []string{"X-Should-Retry", "false"}, "null", 1, 0},
		{"older proxy: 503 with Retry-After over a minute", 503, []string{"Retry-After", "3600"}, "3600", 1, time.Hour},
		{"429, x-should-retry true, soon", 429, []string{"X-Should-Retry", "true", "Retry-After", "1"}, "0.01", 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"error":{"type":"poolswitch_error","code":"no_available_keys","message":"m","retry_after":` +
				tt.retryAfter + `}}`
			exhausted := answer(tt.status, body, append([]string{"X-Poolswitch-Error", CodeNoAvailableKeys}, tt.headers...)...)
			var srv *recorder
			srv = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				if len(srv.requests()) == 1 {
					exhausted(w, r)
					return
				}
				everyCall(w, r)
			})
			started := time.Now()
			var waits []time.Duration
			err := testClient(srv.URL, &waits, WithToken(callerToken), WithMaxRetries(3)).PostJSON(
				context.Background(), "/v1/chat/completions", map[string]int{"n": 1}, nil)
			if elapsed := time.Since(started); elapsed > 5*time.Second {
				t.Errorf("took %v: the client must not wait long on its own", elapsed)
			}
			if n := len(srv.requests()); n != tt.wantTries {
				t.Errorf("%d requests, want %d", n, tt.wantTries)
			}
			if len(waits) != tt.wantTries-1 || (len(waits) == 1 && waits[0] != 1050*time.Millisecond) {
				t.Errorf("waits = %v, want the Retry-After (1 s) * 1.05 before each retry", waits)
			}
			if tt.wantTries > 1 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := asError(t, err, KindProxy)
			if e.Code != CodeNoAvailableKeys || e.StatusCode != tt.status || e.RetryAfter != tt.wantAfter {
				t.Errorf("Code, StatusCode, RetryAfter = %q, %d, %v; want %q, %d, %v",
					e.Code, e.StatusCode, e.RetryAfter, CodeNoAvailableKeys, tt.status, tt.wantAfter)
			}
		})
	}
}

func TestNewProxyCodes(t *testing.T) {
	tests := []struct {
		status int
		code   string
		extra  []string
		after  time.Duration
	}{
		{401, CodeUnauthorized, nil, 0},
		{403, CodeForbidden, nil, 0},
		{431, CodeHeadersTooLarge, nil, 0},
		{404, CodeNoSuchPool, nil, 0},
		{429, CodeCallerRateLimited, []string{"Retry-After", "3", "X-Should-Retry", "true"}, 2500 * time.Millisecond},
		{429, CodeCallerRateLimited, []string{"X-Should-Retry", "false"}, 90 * time.Second},
		{503, CodeOverloaded, []string{"Retry-After", "1", "X-Should-Retry", "true"}, time.Second},
		{503, CodeUpstreamUnavailable, []string{"Retry-After", "2", "X-Should-Retry", "true"}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			retry := "null"
			if tt.after > 0 {
				retry = fmt.Sprint(tt.after.Seconds())
			}
			body := `{"error":{"type":"poolswitch_error","code":"` + tt.code + `","message":"m","retry_after":` + retry + `}}`
			srv := newRecorder(t, answer(tt.status, body, append([]string{"X-Poolswitch-Error", tt.code}, tt.extra...)...))
			err := NewClient(srv.URL, WithMaxRetries(0)).GetJSON(context.Background(), "/v1/models", nil)
			e := asError(t, err, KindProxy)
			if !IsProxyError(err) || e.Code != tt.code || e.StatusCode != tt.status || e.RetryAfter != tt.after {
				t.Errorf("got %q %d %v, want %q %d %v", e.Code, e.StatusCode, e.RetryAfter, tt.code, tt.status, tt.after)
			}
		})
	}
}
