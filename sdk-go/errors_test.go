package poolswitch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAnswerErrors(t *testing.T) {
	noKeys := `{"error": {"type": "poolswitch_error", "code": "no_available_keys", ` +
		`"message": "every key is cooling down or disabled; the first returns in 41.2s", "retry_after": 42.0}}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    Error // Kind, StatusCode, Code, Message, RetryAfter, KeyID, Attempts, RequestID
		proxy   bool
	}{
		{
			name: "no available keys",
			handler: answer(503, noKeys, "X-Poolswitch-Error", "no_available_keys", "Retry-After", "42",
				"Content-Type", "application/json", "X-Poolswitch-Request-Id", "req-1"),
			want: Error{Kind: KindProxy, StatusCode: 503, Code: CodeNoAvailableKeys,
				Message: "every key is cooling down or disabled; the first returns in 41.2s", RetryAfter: 42 * time.Second,
				RequestID: "req-1"},
			proxy: true,
		},
		{
			name: "retry_after from the body when the header is missing",
			handler: answer(503, `{"error":{"code":"no_available_keys","message":"m","retry_after":1.5}}`,
				"X-Poolswitch-Error", "no_available_keys"),
			want:  Error{Kind: KindProxy, StatusCode: 503, Code: CodeNoAvailableKeys, Message: "m", RetryAfter: 1500 * time.Millisecond},
			proxy: true,
		},
		{
			name: "no key returns by itself",
			handler: answer(503, `{"error":{"code":"no_available_keys","message":"m","retry_after":null}}`,
				"X-Poolswitch-Error", "no_available_keys"),
			want:  Error{Kind: KindProxy, StatusCode: 503, Code: CodeNoAvailableKeys, Message: "m"},
			proxy: true,
		},
		{
			name: "upstream unreachable with attempts",
			handler: answer(502, `{"error":{"code":"upstream_unreachable","message":"gone"}}`,
				"X-Poolswitch-Error", "upstream_unreachable", "X-Poolswitch-Attempts", "3"),
			want:  Error{Kind: KindProxy, StatusCode: 502, Code: CodeUpstreamUnreachable, Message: "gone", Attempts: 3},
			proxy: true,
		},
		{
			name:    "proxy error without a JSON body",
			handler: answer(500, `oops`, "X-Poolswitch-Error", "internal_error"),
			want:    Error{Kind: KindProxy, StatusCode: 500, Code: CodeInternalError},
			proxy:   true,
		},
		{
			name: "upstream 400",
			handler: answer(400, `{"error":{"message":"Invalid request: 'messages' is a required property.","type":"invalid_request_error","param":null,"code":null}}`,
				"X-Poolswitch-Key-Id", "a", "X-Poolswitch-Attempts", "1"),
			want: Error{Kind: KindUpstream, StatusCode: 400,
				Message: "Invalid request: 'messages' is a required property.", KeyID: "a", Attempts: 1},
		},
		{
			name: "upstream 503 is not a proxy 503",
			handler: answer(503, `{"error":{"code":"no_available_keys","message":"upstream says"}}`,
				"Retry-After", "7", "X-Poolswitch-Key-Id", "b", "X-Poolswitch-Attempts", "2", "X-Poolswitch-Request-Id", "req-2"),
			want: Error{Kind: KindUpstream, StatusCode: 503, Message: "upstream says", RetryAfter: 7 * time.Second,
				KeyID: "b", Attempts: 2, RequestID: "req-2"},
		},
		{
			name:    "Anthropic shape",
			handler: answer(529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`),
			want:    Error{Kind: KindUpstream, StatusCode: 529, Message: "Overloaded"},
		},
		{
			name:    "string error",
			handler: answer(403, `{"error":"forbidden here"}`),
			want:    Error{Kind: KindUpstream, StatusCode: 403, Message: "forbidden here"},
		},
		{
			name:    "top-level message",
			handler: answer(404, `{"message":"not found"}`),
			want:    Error{Kind: KindUpstream, StatusCode: 404, Message: "not found"},
		},
		{
			name:    "plain text",
			handler: answer(500, `Internal Server Error`),
			want:    Error{Kind: KindUpstream, StatusCode: 500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, tt.handler)
			err := NewClient(srv.URL, WithMaxRetries(0)).PostJSON(context.Background(), "/v1/chat/completions?x=1", nil, nil)
			e := asError(t, err, tt.want.Kind)
			got := Error{Kind: e.Kind, StatusCode: e.StatusCode, Code: e.Code, Message: e.Message,
				RetryAfter: e.RetryAfter, KeyID: e.KeyID, Attempts: e.Attempts, RequestID: e.RequestID}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if IsProxyError(err) != tt.proxy || (e.Code != "") != tt.proxy {
				t.Errorf("IsProxyError = %v, Code = %q; want proxy = %v", IsProxyError(err), e.Code, tt.proxy)
			}
			if e.Method != "POST" || e.Path != "/v1/chat/completions" || len(e.Body) == 0 || e.Header == nil {
				t.Errorf("facts missing: %+v", e)
			}
			if e.Unwrap() != nil {
				t.Errorf("Unwrap() = %v, want nil for an answer", e.Unwrap())
			}
		})
	}
}

func TestErrorBodyIsBounded(t *testing.T) {
	srv := newRecorder(t, answer(500, strings.Repeat("x", maxErrorBody+10)))
	_, err := NewClient(srv.URL).Do(context.Background(), &Request{Path: "/"})
	if e := asError(t, err, KindUpstream); len(e.Body) != maxErrorBody {
		t.Errorf("len(Body) = %d, want %d", len(e.Body), maxErrorBody)
	}
}

func TestErrorStrings(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Kind: KindProxy, Method: "POST", Path: "/v1/x", StatusCode: 503, Code: "no_available_keys",
			Message: "every key is cooling down", RetryAfter: 30 * time.Second},
			"poolswitch: POST /v1/x: proxy error no_available_keys (503): every key is cooling down; retry after 30s"},
		{&Error{Kind: KindUpstream, Method: "GET", Path: "/v1/models", StatusCode: 400, KeyID: "a", Message: "bad"},
			"poolswitch: GET /v1/models: upstream answered 400 Bad Request (key a): bad"},
		{&Error{Kind: KindConnection, Method: "GET", Path: "/", Err: errors.New("connection refused")},
			"poolswitch: GET /: connection to the proxy failed: connection refused"},
		{&Error{Kind: KindTimeout, Method: "GET", Path: "/", Message: "no complete answer within 1s (WithTimeout)",
			Err: context.DeadlineExceeded},
			"poolswitch: GET /: timed out: no complete answer within 1s (WithTimeout): context deadline exceeded"},
		{&Error{Kind: KindDecode, Method: "GET", Path: "/status", StatusCode: 200, Err: errors.New("bad json")},
			"poolswitch: GET /status: cannot decode the answer (200): bad json"},
		{&Error{Kind: KindInvalid, Message: "nil *Request"}, "poolswitch: invalid call: nil *Request"},
	}
	for _, tt := range tests {
		t.Run(string(tt.err.Kind), func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q\nwant      %q", got, tt.want)
			}
		})
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	const token = "sk-caller-secret-1234"
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		// An upstream that echoes the caller's header back in its message.
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":{"message":"bad key %s"}}`, r.Header.Get("X-Poolswitch-Token"))
	})
	err := NewClient(srv.URL, WithToken(token)).GetJSON(context.Background(), "/v1/models", nil)
	e := asError(t, err, KindUpstream)
	if strings.Contains(e.Error(), token) || strings.Contains(e.Message, token) {
		t.Errorf("token leaked: %q", e.Error())
	}
	if !strings.Contains(e.Message, "[token]") {
		t.Errorf("Message = %q, want the token redacted", e.Message)
	}
}

func TestIsProxyError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"other", errors.New("x"), false},
		{"proxy", &Error{Kind: KindProxy, Code: "bad_request"}, true},
		{"wrapped proxy", fmt.Errorf("chat: %w", &Error{Kind: KindProxy, Code: "bad_request"}), true},
		{"upstream", &Error{Kind: KindUpstream, StatusCode: 503}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsProxyError(tt.err); got != tt.want {
				t.Errorf("IsProxyError = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{" 2 ", 2 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"-3", 0},
		{"NaN", 0},
		{"1e300", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
