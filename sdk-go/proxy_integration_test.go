package poolswitch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type script = map[string][]map[string]any

// seedBody is the request of the seed program.
var seedBody = map[string]any{
	"model":    "gpt-4o-mini",
	"messages": []map[string]string{{"role": "user", "content": "hello"}},
}

// TestProxy runs the calls that park no key against one proxy, one after another.
func TestProxy(t *testing.T) {
	t.Parallel()
	px := startProxy(t, []string{"a", "b"}, "strategy: quota_failover\nretry_attempts: 2")
	ctx := context.Background()
	client := NewClient(px.URL, WithTimeout(30*time.Second))

	tests := []struct {
		name   string
		script script
		run    func(t *testing.T)
		keys   string // the keys the upstream saw, in order; "*" for any
	}{
		{
			name: "seed program",
			run: func(t *testing.T) {
				var out map[string]any
				if err := client.PostJSON(ctx, "/v1/chat/completions", seedBody, &out); err != nil {
					t.Fatal(err)
				}
				if out["object"] != "chat.completion" || out["choices"] == nil {
					t.Errorf("out = %v, want the upstream's chat completion", out)
				}
			},
			keys: "a",
		},
		{
			name: "Do reports the key and the attempts",
			run: func(t *testing.T) {
				resp, err := client.Do(ctx, &Request{Method: "POST", Path: "/v1/chat/completions", JSON: seedBody})
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 || resp.KeyID != "a" || resp.Attempts != 1 || len(resp.Body) == 0 {
					t.Errorf("Response = %d key %q attempts %d", resp.StatusCode, resp.KeyID, resp.Attempts)
				}
			},
			keys: "a",
		},
		{
			name:   "upstream 400 is relayed with its status and body",
			script: script{"a": {{"kind": "bad_request"}}},
			run: func(t *testing.T) {
				err := client.PostJSON(ctx, "/v1/chat/completions", map[string]any{"model": "gpt-4o-mini"}, nil)
				e := asError(t, err, KindUpstream)
				if e.StatusCode != 400 || e.KeyID != "a" || e.Attempts != 1 || IsProxyError(err) ||
					!strings.Contains(string(e.Body), "'messages' is a required property") ||
					e.Message != "Invalid request: 'messages' is a required property." {
					t.Errorf("error = %+v (%s)", e, e.Body)
				}
			},
			keys: "a",
		},
		{
			name:   "upstream 503 after failover is not a proxy error",
			script: script{"a": {{"kind": "server_error", "status": 503}}, "b": {{"kind": "server_error", "status": 503}}},
			run: func(t *testing.T) {
				err := client.GetJSON(ctx, "/v1/models", nil)
				e := asError(t, err, KindUpstream)
				if e.StatusCode != 503 || e.Code != "" || IsProxyError(err) || e.KeyID != "b" || e.Attempts != 2 {
					t.Errorf("error = %+v", e)
				}
			},
			keys: "a,b",
		},
		{
			name:   "unreachable upstream",
			script: script{"a": {{"kind": "drop"}}, "b": {{"kind": "drop"}}},
			run: func(t *testing.T) {
				err := client.GetJSON(ctx, "/v1/models", nil)
				e := asError(t, err, KindProxy)
				if e.StatusCode != 502 || e.Code != CodeUpstreamUnreachable || e.Attempts != 2 || !IsProxyError(err) {
					t.Errorf("error = %+v", e)
				}
			},
			keys: "*", // the proxy's HTTP client may itself retry a GET on a dropped connection
		},
		{
			// That the caller token (x-poolswitch-token) never reaches the upstream is the
			// proxy's promise, tested with the server (callers: in its config).
			name: "the caller's headers reach the upstream, the pool key replaces its auth",
			run: func(t *testing.T) {
				c := NewClient(px.URL, WithHeader("X-Team", "search"), WithHeader("Authorization", "Bearer caller-secret"))
				if err := c.GetJSON(ctx, "/v1/models?limit=2", nil); err != nil {
					t.Fatal(err)
				}
				seen := px.Fake.attempts(t)[0]
				if seen.Path != "/v1/models" {
					t.Errorf("upstream saw path %q", seen.Path)
				}
				var team bool
				for _, h := range seen.Headers {
					if strings.Contains(h[1], "caller-secret") {
						t.Errorf("upstream saw the caller's own credential in %s", h[0])
					}
					team = team || (h[0] == "x-team" && h[1] == "search")
				}
				if !team {
					t.Errorf("upstream did not see X-Team: %v", seen.Headers)
				}
			},
			keys: "a",
		},
		{
			name: "stream yields the first event before the upstream has finished",
			script: script{"a": {{"kind": "sse", "events": []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
				"interval": 0.1}}},
			run: func(t *testing.T) {
				stream, err := client.Stream(ctx, "POST", "/v1/chat/completions", map[string]any{"stream": true})
				if err != nil {
					t.Fatal(err)
				}
				defer stream.Close()
				if stream.KeyID != "a" || stream.Attempts != 1 {
					t.Errorf("stream key %q attempts %d", stream.KeyID, stream.Attempts)
				}
				var data []string
				var first, last time.Time
				for stream.Next() {
					if first.IsZero() {
						first = time.Now()
					}
					last = time.Now()
					data = append(data, stream.Event().Data)
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(data, " "); got != "0 1 2 3 4 5 6 7 8 9 [DONE]" {
					t.Errorf("events = %q", got)
				}
				// The upstream sends the last event 1 s after the first: a buffered stream would
				// deliver them together.
				if gap := last.Sub(first); gap < 500*time.Millisecond {
					t.Errorf("the first event came only %v before the last", gap)
				}
			},
			keys: "a",
		},
		{
			name: "built-in endpoints",
			run: func(t *testing.T) {
				h, err := client.Health(ctx)
				if err != nil || *h != (Health{HealthOK, 2, 2}) {
					t.Errorf("Health = %+v, %v", h, err)
				}
				s, err := client.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if s.Strategy != "quota_failover" || s.UpstreamBaseURL != px.Fake.URL || len(s.Keys) != 2 ||
					s.Keys[0].ID != "a" || s.Keys[0].State != KeyAvailable || s.Keys[0].TotalRequests == 0 ||
					s.Keys[0].LastUsedAt.IsZero() {
					t.Errorf("Status = %+v", s)
				}
				m, err := client.Metrics(ctx)
				if err != nil || !strings.Contains(m, "poolswitch_requests_total") {
					t.Errorf("Metrics: %v\n%s", err, m)
				}
			},
			keys: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			px.Fake.reset(t)
			if tt.script != nil {
				px.Fake.script(t, tt.script)
			}
			tt.run(t)
			if got := px.Fake.keyIDs(t); tt.keys != "*" && got != tt.keys {
				t.Errorf("upstream saw keys %q, want %q", got, tt.keys)
			}
		})
	}
}

func TestProxyFailover(t *testing.T) {
	t.Parallel()
	px := startProxy(t, []string{"a", "b"}, "strategy: quota_failover")
	px.Fake.script(t, script{"a": {{"kind": "rate_limit", "headers": map[string]string{"retry-after": "30"}}}})
	client := NewClient(px.URL)
	ctx := context.Background()

	var out map[string]any
	resp, err := client.Do(ctx, &Request{Method: "POST", Path: "/v1/chat/completions", JSON: seedBody})
	if err != nil {
		t.Fatal(err)
	}
	if resp.KeyID != "b" || resp.Attempts != 2 {
		t.Errorf("answered by key %q after %d attempts, want b after 2", resp.KeyID, resp.Attempts)
	}
	if err := resp.Decode(&out); err != nil || out["object"] != "chat.completion" {
		t.Errorf("body: %v %v", err, out)
	}
	s, err := client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Keys[0]
	if a.State != KeyCoolingDown || a.Reason != "rate_limited" || time.Until(a.CooldownUntil) < 20*time.Second {
		t.Errorf("key a = %+v", a)
	}
	if h, err := client.Health(ctx); err != nil || h.KeysAvailable != 1 {
		t.Errorf("Health = %+v, %v", h, err)
	}
}

func TestProxyNoAvailableKeys(t *testing.T) {
	t.Parallel()
	// One attempt per request: the last key's 429 is relayed as it is (docs/protocol.md).
	px := startProxy(t, []string{"a"}, "retry_attempts: 1")
	px.Fake.script(t, script{"a": {{"kind": "rate_limit", "headers": map[string]string{"retry-after": "30"}}}})
	client := NewClient(px.URL)
	ctx := context.Background()

	// The one key is rate limited: its 429 is relayed, and the key cools down for 30 s.
	err := client.PostJSON(ctx, "/v1/chat/completions", seedBody, nil)
	if e := asError(t, err, KindUpstream); e.StatusCode != 429 || e.KeyID != "a" || e.RetryAfter != 30*time.Second {
		t.Errorf("first error = %+v", e)
	}

	// Now no key can serve; a deadline shorter than the Retry-After does not wait for it.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	err = client.PostJSON(dctx, "/v1/chat/completions", seedBody, nil)
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != CodeNoAvailableKeys {
		t.Fatalf("err = %v, want no_available_keys", err)
	}
	// 503 before the x-should-retry contract, 429 with it: the code is the contract.
	if perr.Kind != KindProxy || !IsProxyError(err) ||
		perr.RetryAfter < 25*time.Second || perr.RetryAfter > 30*time.Second ||
		!strings.Contains(perr.Message, "every key is cooling down") {
		t.Errorf("error = %+v", perr)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: the client waited although the deadline is before the Retry-After", d)
	}
	if h, err := client.Health(ctx); err != nil || h.Status != HealthDegraded {
		t.Errorf("Health = %+v, %v", h, err)
	}
	if got := px.Fake.keyIDs(t); got != "a" {
		t.Errorf("upstream saw keys %q, want a", got)
	}
}

func TestProxyRetriesNoAvailableKeys(t *testing.T) {
	t.Parallel()
	px := startProxy(t, []string{"a"}, "retry_attempts: 1")
	px.Fake.script(t, script{"a": {
		{"kind": "rate_limit", "headers": map[string]string{"retry-after": "1"}},
		{"kind": "ok"},
	}})
	client := NewClient(px.URL)
	ctx := context.Background()
	if err := client.PostJSON(ctx, "/v1/chat/completions", seedBody, nil); !errors.As(err, new(*Error)) {
		t.Fatalf("first call: %v, want the relayed 429", err)
	}

	// The key returns in about 1 s: within the deadline, the client waits and retries.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out map[string]any
	if err := client.PostJSON(dctx, "/v1/chat/completions", seedBody, &out); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if out["object"] != "chat.completion" {
		t.Errorf("out = %v", out)
	}
	if got := px.Fake.keyIDs(t); got != "a,a" {
		t.Errorf("upstream saw keys %q, want a,a", got)
	}
}
