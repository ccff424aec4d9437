package poolswitch

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestInvalidConfigurationFailsEveryCall(t *testing.T) {
	tests := []struct {
		name    string
		baseURL string // "" means the test server's
		opts    []Option
		want    string
	}{
		{"unparsable URL", "http://[::1", nil, "base URL"},
		{"no scheme", "127.0.0.1:8080", nil, "not an absolute URL"},
		{"other scheme", "ftp://127.0.0.1", nil, "http or https"},
		{"no host", "http://", nil, "no host"},
		{"empty", " ", nil, "base URL"},
		{"user info", "http://user:hunter2@127.0.0.1:8080", nil, "user info"},
		{"query", "http://127.0.0.1:8080/?a=b", nil, "query"},
		{"fragment", "http://127.0.0.1:8080/#x", nil, "fragment"},
		{"nil HTTP client", "", []Option{WithHTTPClient(nil)}, "WithHTTPClient"},
		{"empty token", "", []Option{WithToken("")}, "WithToken: empty"},
		{"token with newline", "", []Option{WithToken("secret-tok\nX-Evil: 1")}, "WithToken"},
		{"negative timeout", "", []Option{WithTimeout(-time.Second)}, "WithTimeout"},
		{"header name", "", []Option{WithHeader("Bad Name", "x")}, "WithHeader: invalid header name"},
		{"header value", "", []Option{WithHeader("X-A", "a\r\nb")}, "line break"},
		{"reserved header", "", []Option{WithHeader("content-length", "3")}, "set by the client"},
		{"negative retries", "", []Option{WithMaxRetries(-1)}, "WithMaxRetries"},
		{"empty pool", "", []Option{WithPool("")}, "WithPool: invalid pool name"},
		{"pool with a space", "", []Option{WithPool("open ai")}, "WithPool"},
		{"pool with a line break", "", []Option{WithPool("openai\r\nX-Evil: 1")}, "WithPool"},
		{"nil option", "", []Option{nil}, "option 0 is nil"},
		{"first error wins", "", []Option{WithMaxRetries(-1), WithTimeout(-1)}, "WithMaxRetries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, "{}"))
			base := tt.baseURL
			if base == "" {
				base = srv.URL
			}
			c := NewClient(base, tt.opts...)
			ctx := context.Background()
			calls := map[string]func() error{
				"GetJSON": func() error { return c.GetJSON(ctx, "/x", nil) },
				"Do":      func() error { _, err := c.Do(ctx, &Request{Path: "/x"}); return err },
				"Stream":  func() error { _, err := c.Stream(ctx, &Request{Path: "/x"}); return err },
				"Health":  func() error { _, err := c.Health(ctx); return err },
			}
			for name, call := range calls {
				e := asError(t, call(), KindInvalid)
				msg := e.Error()
				if !strings.Contains(msg, tt.want) {
					t.Errorf("%s: error %q does not contain %q", name, msg, tt.want)
				}
				if strings.Contains(msg, "hunter2") || strings.Contains(msg, "secret-tok") {
					t.Errorf("%s: error %q repeats a secret", name, msg)
				}
			}
			if n := len(srv.requests()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestValidOptions(t *testing.T) {
	hc := &http.Client{}
	c := NewClient("https://gw.example.com/pool/", WithHTTPClient(hc), WithToken("t"),
		WithTimeout(time.Second), WithHeader("X-A", "1"), WithMaxRetries(0), WithPool("open_ai-2"))
	if c.err != nil {
		t.Fatal(c.err)
	}
	if c.http != hc || c.token.reveal() != "t" || c.timeout != time.Second || c.header.Get("X-A") != "1" ||
		c.maxRetries != 0 || c.pool != "open_ai-2" || c.base.String() != "https://gw.example.com/pool" {
		t.Errorf("client = %+v", c)
	}
	if d := NewClient("http://127.0.0.1:8080"); d.maxRetries != 2 || d.timeout != 600*time.Second || d.pool != "" {
		t.Errorf("defaults: %+v", d)
	}
}
