package poolswitch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	errDial  = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	errReset = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	// errTimeout is what a transport returns when its own timeout (say a dial timeout) passed.
	errTimeout = &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

const noKeysBody = `{"error":{"type":"poolswitch_error","code":"no_available_keys","message":"m","retry_after":1}}`

// noKeys is a no_available_keys answer of a proxy before the x-should-retry contract: 503 with
// the given Retry-After ("" for none), the same number in the body.
func noKeys(r *http.Request, retryAfter string) *http.Response {
	return proxyAnswer(r, 503, CodeNoAvailableKeys, retryAfter, "Retry-After", retryAfter)
}

// proxyAnswer is an answer the proxy made: status, code, the body's retry_after ("" for null)
// and headers (an empty value is left out).
func proxyAnswer(r *http.Request, status int, code, retryAfter string, headers ...string) *http.Response {
	if retryAfter == "" {
		retryAfter = "null"
	}
	body := `{"error":{"type":"poolswitch_error","code":"` + code + `","message":"m","retry_after":` + retryAfter + `}}`
	resp := stubResponse(r, status, body, "X-Poolswitch-Error", code)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			resp.Header.Set(headers[i], headers[i+1])
		}
	}
	return resp
}

func answerWith(status int, code, retryAfter string, headers ...string) func(*http.Request) (*http.Response, error) {
	return func(r *http.Request) (*http.Response, error) {
		return proxyAnswer(r, status, code, retryAfter, headers...), nil
	}
}

func TestRetries(t *testing.T) {
	ok := func(r *http.Request) (*http.Response, error) { return stubResponse(r, 200, `{}`), nil }
	tests := []struct {
		name       string
		method     string
		maxRetries int
		deadline   time.Duration   // 0: none
		timeout    time.Duration   // WithTimeout
		wantWaits  []time.Duration // checked when not nil
		answers    []func(*http.Request) (*http.Response, error)
		wantTries  int
		wantKind   Kind // "" means success
		wantCode   string
	}{
		{
			name: "dial failure retried for POST", method: "POST", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errDial), failWith(errDial), ok},
			wantTries: 3,
		},
		{
			name: "dial failure until retries run out", method: "POST", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errDial)},
			wantTries: 3, wantKind: KindConnection,
		},
		{
			name: "connection reset before the answer retried for POST", method: "POST", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errReset), ok},
			wantTries: 2, wantWaits: []time.Duration{375 * time.Millisecond},
		},
		{
			name: "connection failures back off exponentially, capped at 8 s", method: "GET", maxRetries: 6,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errDial)},
			wantTries: 7, wantKind: KindConnection,
			wantWaits: []time.Duration{375 * time.Millisecond, 750 * time.Millisecond, 1500 * time.Millisecond,
				3 * time.Second, 6 * time.Second, 6 * time.Second},
		},
		{
			name: "a timeout is not retried", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errTimeout), ok},
			wantTries: 1, wantKind: KindTimeout,
		},
		{
			name: "broken connection retried for GET", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errReset), ok},
			wantTries: 2,
		},
		{
			name: "unexpected EOF retried for GET", method: "GET", maxRetries: 1,
			answers:   []func(*http.Request) (*http.Response, error){failWith(io.ErrUnexpectedEOF), ok},
			wantTries: 2,
		},
		{
			name: "non-network failure not retried", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errors.New("tls: bad certificate")), ok},
			wantTries: 1, wantKind: KindConnection,
		},
		{
			name: "no retries when disabled", method: "GET", maxRetries: 0,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errDial), ok},
			wantTries: 1, wantKind: KindConnection,
		},
		{
			name: "backoff past the deadline is not taken", method: "GET", maxRetries: 2, deadline: 200 * time.Millisecond,
			answers:   []func(*http.Request) (*http.Response, error){failWith(errDial), ok},
			wantTries: 1, wantKind: KindConnection,
		},
		{
			name: "no_available_keys retried within the deadline", method: "POST", maxRetries: 2, deadline: 5 * time.Second,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("0.01"), ok},
			wantTries: 2,
		},
		{
			name: "no_available_keys retried within WithTimeout", method: "POST", maxRetries: 2, timeout: 5 * time.Second,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("0.01"), noKeysAfter("0.01"), ok},
			wantTries: 3,
		},
		{
			name: "no_available_keys until retries run out", method: "POST", maxRetries: 1, deadline: 5 * time.Second,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("0.01")},
			wantTries: 2, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "no_available_keys retried without a deadline (the wait is bounded)", method: "POST", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("0.01"), ok},
			wantTries: 2,
		},
		{
			name: "no_available_keys over MaxRetryWait not retried without a deadline", method: "POST", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("61"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "429 no_available_keys with x-should-retry false, a month away", method: "POST", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(429, CodeNoAvailableKeys, "2617953", "X-Should-Retry", "false"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "429 no_available_keys with x-should-retry false, soon", method: "GET", maxRetries: 3, deadline: time.Hour,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(429, CodeNoAvailableKeys, "0.01", "X-Should-Retry", " FALSE ", "Retry-After", "1"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "429 no_available_keys with retry_after null", method: "GET", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(429, CodeNoAvailableKeys, "", "X-Should-Retry", "false"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "429 no_available_keys with x-should-retry true", method: "POST", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(429, CodeNoAvailableKeys, "0.01", "X-Should-Retry", "true", "Retry-After", "1"), ok},
			wantTries: 2,
		},
		{
			name: "overloaded with x-should-retry true", method: "POST", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(503, CodeOverloaded, "0", "X-Should-Retry", "true", "Retry-After", "0"), ok},
			wantTries: 2,
		},
		{
			name: "upstream_unavailable, Retry-After only", method: "GET", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){func(r *http.Request) (*http.Response, error) {
				return stubResponse(r, 503, `{}`, "X-Poolswitch-Error", CodeUpstreamUnavailable, "Retry-After", "0"), nil
			}, ok},
			wantTries: 2,
		},
		{
			name: "overloaded with x-should-retry false", method: "GET", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(503, CodeOverloaded, "0", "X-Should-Retry", "false", "Retry-After", "0"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeOverloaded,
		},
		{
			name: "unauthorized is not retried, whatever it says", method: "GET", maxRetries: 3,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(401, CodeUnauthorized, "0", "X-Should-Retry", "true"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeUnauthorized,
		},
		{
			name: "no_available_keys not retried past the deadline", method: "POST", maxRetries: 2, deadline: 5 * time.Second,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("30"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "no_available_keys not retried past WithTimeout", method: "POST", maxRetries: 2, timeout: 2 * time.Second,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("30"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "no_available_keys naming no wait backs off", method: "POST", maxRetries: 2, deadline: 5 * time.Second,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter(""), ok},
			wantTries: 2, wantWaits: []time.Duration{375 * time.Millisecond},
		},
		{
			name: "caller_rate_limited retried after Retry-After, jittered up", method: "POST", maxRetries: 2,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(429, CodeCallerRateLimited, "0.4", "X-Should-Retry", "true", "Retry-After", "1"), ok},
			wantTries: 2, wantWaits: []time.Duration{1050 * time.Millisecond},
		},
		{
			name: "caller_rate_limited with x-should-retry false", method: "POST", maxRetries: 2,
			answers: []func(*http.Request) (*http.Response, error){
				answerWith(429, CodeCallerRateLimited, "3600", "X-Should-Retry", "false"), ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeCallerRateLimited,
		},
		{
			name: "the body's retry_after when there is no Retry-After", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){answerWith(503, CodeOverloaded, "2"), ok},
			wantTries: 2, wantWaits: []time.Duration{2100 * time.Millisecond},
		},
		{
			name: "a jittered wait is cut to MaxRetryWait", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("59"), ok},
			wantTries: 2, wantWaits: []time.Duration{MaxRetryWait},
		},
		{
			name: "no_available_keys over MaxRetryWait in the body only", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){answerWith(503, CodeNoAvailableKeys, "61")},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
		},
		{
			name: "retries run out after max_retries", method: "GET", maxRetries: 2,
			answers:   []func(*http.Request) (*http.Response, error){noKeysAfter("0")},
			wantTries: 3, wantKind: KindProxy, wantCode: CodeNoAvailableKeys,
			wantWaits: []time.Duration{0, 0},
		},
		{
			name: "upstream 503 is not retried", method: "GET", maxRetries: 2, deadline: 5 * time.Second,
			answers: []func(*http.Request) (*http.Response, error){func(r *http.Request) (*http.Response, error) {
				return stubResponse(r, 503, `{}`, "Retry-After", "0.01"), nil
			}, ok},
			wantTries: 1, wantKind: KindUpstream,
		},
		{
			name: "other proxy errors are not retried", method: "GET", maxRetries: 2, deadline: 5 * time.Second,
			answers: []func(*http.Request) (*http.Response, error){func(r *http.Request) (*http.Response, error) {
				return stubResponse(r, 502, `{}`, "X-Poolswitch-Error", "upstream_unreachable"), nil
			}, ok},
			wantTries: 1, wantKind: KindProxy, wantCode: CodeUpstreamUnreachable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tries atomic.Int32
			var bodies []string
			transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				n := int(tries.Add(1))
				if r.Body != nil {
					b, _ := io.ReadAll(r.Body)
					bodies = append(bodies, string(b))
				}
				if n > len(tt.answers) {
					n = len(tt.answers)
				}
				return tt.answers[n-1](r)
			})
			opts := []Option{WithHTTPClient(&http.Client{Transport: transport}), WithMaxRetries(tt.maxRetries)}
			if tt.timeout > 0 {
				opts = append(opts, WithTimeout(tt.timeout))
			}
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			var in any
			if tt.method == "POST" {
				in = map[string]string{"q": "1"}
			}
			var waits []time.Duration
			c := testClient("http://proxy.test", &waits, opts...)
			err := c.DoJSON(ctx, tt.method, "/v1/x", in, nil)
			if tt.wantWaits != nil && !reflect.DeepEqual(waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
			if int(tries.Load()) != tt.wantTries {
				t.Errorf("tries = %d, want %d", tries.Load(), tt.wantTries)
			}
			for i, b := range bodies {
				if tt.method == "POST" && b != `{"q":"1"}` {
					t.Errorf("attempt %d sent body %q", i+1, b)
				}
			}
			if tt.wantKind == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if e := asError(t, err, tt.wantKind); e.Code != tt.wantCode {
				t.Errorf("Code = %q, want %q", e.Code, tt.wantCode)
			}
		})
	}
}

func failWith(err error) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

func noKeysAfter(retryAfter string) func(*http.Request) (*http.Response, error) {
	return func(r *http.Request) (*http.Response, error) { return noKeys(r, retryAfter), nil }
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	err = testClient("http://"+addr, nil).GetJSON(context.Background(), "/health?x=secret", nil)
	e := asError(t, err, KindConnection)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("cause %v is not the dial error", e.Err)
	}
	if e.Path != "/health" || e.StatusCode != 0 {
		t.Errorf("error facts: %+v", e)
	}
}

func TestBackoff(t *testing.T) {
	c := NewClient("http://proxy.test")
	for _, r := range []float64{0, 0.999999} {
		c.random = func() float64 { return r }
		for n := 0; n < 10; n++ {
			base := 500 * time.Millisecond << uint(n)
			if n >= 4 {
				base = 8 * time.Second
			}
			lo, hi := base/2, base
			if d := c.backoff(n); d < lo || d > hi {
				t.Errorf("backoff(%d) with random %v = %v, want in [%v, %v]", n, r, d, lo, hi)
			}
		}
		if d := c.jittered(10 * time.Second); d < 10*time.Second || d > 11*time.Second {
			t.Errorf("jittered(10s) with random %v = %v", r, d)
		}
	}
}
