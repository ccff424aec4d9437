package poolswitch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRequestTarget(t *testing.T) {
	tests := []struct {
		name     string
		basePath string
		path     string
		query    url.Values
		want     string
	}{
		{"plain", "", "/v1/models", nil, "/v1/models"},
		{"base path kept", "/gw/openai", "/v1/models", nil, "/gw/openai/v1/models"},
		{"base trailing slash", "/gw/", "/v1/models", nil, "/gw/v1/models"},
		{"query in path", "", "/v1/files?limit=2&after=x", nil, "/v1/files?limit=2&after=x"},
		{"query values", "", "/v1/files", url.Values{"limit": {"2"}}, "/v1/files?limit=2"},
		{"both queries", "", "/v1/files?a=1", url.Values{"b": {"x y"}}, "/v1/files?a=1&b=x+y"},
		{"encoding kept", "", "/v1/files/a%2Fb%20c", nil, "/v1/files/a%2Fb%20c"},
		{"dot segments sent as written", "", "/v1/../v2/x", nil, "/v1/../v2/x"},
		{"root", "", "/", nil, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, "{}"))
			c := NewClient(srv.URL + tt.basePath)
			if _, err := c.Do(context.Background(), &Request{Path: tt.path, Query: tt.query}); err != nil {
				t.Fatal(err)
			}
			if got := srv.requests()[0].RequestURI; got != tt.want {
				t.Errorf("request URI = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestInvalid(t *testing.T) {
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{"nil request", nil, "nil *Request"},
		{"relative path", &Request{Path: "v1/models"}, "does not start with /"},
		{"absolute URL", &Request{Path: "http://evil.example/v1"}, "does not start with /"},
		{"network path", &Request{Path: "//evil.example/v1"}, "starts with //"},
		{"fragment", &Request{Path: "/v1#x"}, "contains #"},
		{"bad escape", &Request{Path: "/v1/%zz"}, "invalid URL escape"},
		{"bad method", &Request{Method: "GET X", Path: "/"}, "invalid method"},
		{"body and JSON", &Request{Method: "POST", Path: "/", Body: strings.NewReader("x"), JSON: 1}, "not both"},
		{"JSON not encodable", &Request{Method: "POST", Path: "/", JSON: func() {}}, "cannot encode"},
		{"bad header name", &Request{Path: "/", Header: http.Header{"Bad Name": {"x"}}}, "invalid header name"},
		{"unreadable body", &Request{Method: "POST", Path: "/", Body: iotest.ErrReader(errors.New("disk gone"))}, "disk gone"},
		{"bad pool name", &Request{Path: "/", Pool: "open\nai"}, "invalid pool name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, "{}"))
			resp, err := NewClient(srv.URL).Do(context.Background(), tt.req)
			e := asError(t, err, KindInvalid)
			if resp != nil {
				t.Errorf("Response = %+v, want nil", resp)
			}
			if !strings.Contains(e.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", e.Error(), tt.want)
			}
			if n := len(srv.requests()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		call func(c *Client) error
		want map[string]string // "" means absent
	}{
		{
			name: "DoJSON defaults",
			call: func(c *Client) error { return c.PostJSON(context.Background(), "/v1/x", map[string]int{"a": 1}, nil) },
			want: map[string]string{
				"Accept": "application/json", "Content-Type": "application/json",
				"User-Agent": "poolswitch-go", "Authorization": "",
			},
		},
		{
			name: "no body, no content type",
			call: func(c *Client) error { return c.GetJSON(context.Background(), "/v1/x", nil) },
			want: map[string]string{"Content-Type": "", "Accept": "application/json"},
		},
		{
			name: "token and client headers",
			opts: []Option{WithToken("tok-123"), WithHeader("X-Team", "search"), WithHeader("accept", "application/x-custom")},
			call: func(c *Client) error { return c.GetJSON(context.Background(), "/v1/x", nil) },
			want: map[string]string{
				"X-Poolswitch-Token": "tok-123", "Authorization": "", "X-Team": "search", "Accept": "application/x-custom",
			},
		},
		{
			name: "WithPool names the pool",
			opts: []Option{WithPool("openai")},
			call: func(c *Client) error { return c.GetJSON(context.Background(), "/v1/x", nil) },
			want: map[string]string{"X-Poolswitch-Pool": "openai"},
		},
		{
			name: "Request.Pool replaces WithPool",
			opts: []Option{WithPool("openai")},
			call: func(c *Client) error {
				_, err := c.Do(context.Background(), &Request{Path: "/v1/x", Pool: "gemini-2"})
				return err
			},
			want: map[string]string{"X-Poolswitch-Pool": "gemini-2"},
		},
		{
			name: "no pool header without a pool",
			call: func(c *Client) error { return c.GetJSON(context.Background(), "/v1/x", nil) },
			want: map[string]string{"X-Poolswitch-Pool": ""},
		},
		{
			name: "Metrics sends no pool header",
			opts: []Option{WithPool("openai")},
			call: func(c *Client) error { _, err := c.Metrics(context.Background()); return err },
			want: map[string]string{"X-Poolswitch-Pool": ""},
		},
		{
			name: "later WithHeader replaces",
			opts: []Option{WithHeader("X-Team", "a"), WithHeader("x-team", "b")},
			call: func(c *Client) error { return c.GetJSON(context.Background(), "/", nil) },
			want: map[string]string{"X-Team": "b"},
		},
		{
			name: "request headers win",
			opts: []Option{WithToken("tok-123"), WithHeader("X-Team", "search")},
			call: func(c *Client) error {
				_, err := c.Do(context.Background(), &Request{Path: "/", Header: http.Header{
					"x-poolswitch-token": {"other"}, "X-Team": {"ads"}, "Content-Type": {"text/plain"},
				}, Body: strings.NewReader("hi")})
				return err
			},
			want: map[string]string{"X-Poolswitch-Token": "other", "X-Team": "ads", "Content-Type": "text/plain"},
		},
		{
			name: "Do sends no Accept",
			call: func(c *Client) error { _, err := c.Do(context.Background(), &Request{Path: "/"}); return err },
			want: map[string]string{"Accept": ""},
		},
		{
			name: "Stream asks for events",
			call: func(c *Client) error {
				s, err := c.Stream(context.Background(), &Request{Method: "POST", Path: "/v1/x", JSON: map[string]bool{"stream": true}})
				if err == nil {
					s.Close()
				}
				return err
			},
			want: map[string]string{"Accept": "text/event-stream", "Content-Type": "application/json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, "", "Content-Type", "text/event-stream"))
			if err := tt.call(NewClient(srv.URL, tt.opts...)); err != nil {
				t.Fatal(err)
			}
			got := srv.requests()[0].Header
			for name, want := range tt.want {
				if v := got.Get(name); v != want {
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
		})
	}
}

func TestRequestBody(t *testing.T) {
	tests := []struct {
		name string
		req  *Request
		want string
	}{
		{"reader", &Request{Method: "PUT", Path: "/", Body: strings.NewReader("raw bytes")}, "raw bytes"},
		{"JSON", &Request{Method: "POST", Path: "/", JSON: map[string]any{"model": "m", "n": 2}}, `{"model":"m","n":2}`},
		{"none", &Request{Method: "POST", Path: "/"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, ""))
			if _, err := NewClient(srv.URL).Do(context.Background(), tt.req); err != nil {
				t.Fatal(err)
			}
			got := srv.requests()[0]
			if got.Body != tt.want || got.Method != tt.req.Method {
				t.Errorf("got %s %q, want %s %q", got.Method, got.Body, tt.req.Method, tt.want)
			}
		})
	}
}

func TestDoResponse(t *testing.T) {
	srv := newRecorder(t, answer(201, `{"id":"x"}`,
		"X-Poolswitch-Key-Id", "backup", "X-Poolswitch-Attempts", "2", "X-Upstream", "yes"))
	resp, err := NewClient(srv.URL).Do(context.Background(), &Request{Method: "POST", Path: "/v1/x"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.KeyID != "backup" || resp.Attempts != 2 ||
		string(resp.Body) != `{"id":"x"}` || resp.Header.Get("X-Upstream") != "yes" {
		t.Errorf("Response = %+v", resp)
	}
	var out struct{ ID string }
	if err := resp.Decode(&out); err != nil || out.ID != "x" {
		t.Errorf("Decode: %v, %+v", err, out)
	}
}

func TestDoJSON(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		out     any
		want    any
		kind    Kind // "" means no error
	}{
		{"decodes", answer(200, `{"a":[1,2]}`), &map[string]any{}, &map[string]any{"a": []any{1.0, 2.0}}, ""},
		{"nil out", answer(200, `not json`), nil, nil, ""},
		{"no content", answer(204, ``), &map[string]any{"kept": true}, &map[string]any{"kept": true}, ""},
		{"not JSON", answer(200, `<html>`), &map[string]any{}, &map[string]any{}, KindDecode},
		{"wrong shape", answer(200, `[1]`), &map[string]any{}, &map[string]any{}, KindDecode},
		{"upstream error", answer(400, `{"error":{"message":"bad"}}`), &map[string]any{}, &map[string]any{}, KindUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, tt.handler)
			err := NewClient(srv.URL).DoJSON(context.Background(), "POST", "/v1/x", nil, tt.out)
			if tt.kind == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				e := asError(t, err, tt.kind)
				if len(e.Body) == 0 || e.StatusCode == 0 {
					t.Errorf("error without the answer's facts: %+v", e)
				}
			}
			if !reflect.DeepEqual(tt.out, tt.want) {
				t.Errorf("out = %#v, want %#v", tt.out, tt.want)
			}
		})
	}
}

func TestNonSuccessDoReturnsResponseToo(t *testing.T) {
	srv := newRecorder(t, answer(404, `{"error":{"message":"no such model"}}`, "X-Poolswitch-Key-Id", "a"))
	resp, err := NewClient(srv.URL).Do(context.Background(), &Request{Path: "/v1/models/x"})
	e := asError(t, err, KindUpstream)
	if resp == nil || resp.StatusCode != 404 || resp.KeyID != "a" || string(resp.Body) != string(e.Body) {
		t.Errorf("Response = %+v", resp)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	srv := newRecorder(t, answer(302, "", "Location", "https://api.example.com/v1/x"))
	resp, err := NewClient(srv.URL).Do(context.Background(), &Request{Path: "/v1/x"})
	asError(t, err, KindUpstream)
	if resp.StatusCode != 302 || len(srv.requests()) != 1 {
		t.Errorf("status %d after %d requests, want the 302 itself", resp.StatusCode, len(srv.requests()))
	}
}

func TestZeroClient(t *testing.T) {
	var c Client
	err := c.GetJSON(context.Background(), "/health", nil)
	if e := asError(t, err, KindInvalid); !strings.Contains(e.Error(), "NewClient") {
		t.Errorf("error = %v", e)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestBodyIsClosed(t *testing.T) {
	srv := newRecorder(t, answer(200, ""))
	body := &closeRecorder{Reader: strings.NewReader("x")}
	if _, err := NewClient(srv.URL).Do(context.Background(), &Request{Method: "PUT", Path: "/", Body: body}); err != nil {
		t.Fatal(err)
	}
	if !body.closed {
		t.Error("the request body was not closed")
	}
}
