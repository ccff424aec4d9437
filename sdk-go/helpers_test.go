package poolswitch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorded is what a test server saw of one request.
type recorded struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       string
}

// recorder is a test server that records every request and answers with handler.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []recorded
}

func newRecorder(t *testing.T, handler http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.seen = append(rec.seen, recorded{r.Method, r.RequestURI, r.Header.Clone(), string(body)})
		rec.mu.Unlock()
		if handler != nil {
			handler(w, r)
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) requests() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.seen...)
}

// answer writes a canned response.
func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// roundTripFunc is an http.RoundTripper made of a function, for failures no server makes.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// stubResponse is a response as a transport returns it.
func stubResponse(r *http.Request, status int, body string, headers ...string) *http.Response {
	h := make(http.Header)
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &http.Response{
		StatusCode: status,
		Status:     http.StatusText(status),
		Header:     h,
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
		ProtoMajor: 1, ProtoMinor: 1,
	}
}

// testClient is NewClient whose retry waits are recorded in *waits and end at once (unless
// the context ended), with the jitter's random number fixed at 0.5.
func testClient(baseURL string, waits *[]time.Duration, opts ...Option) *Client {
	c := NewClient(baseURL, opts...)
	c.random = func() float64 { return 0.5 }
	var mu sync.Mutex
	c.wait = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		if waits != nil {
			*waits = append(*waits, d)
		}
		mu.Unlock()
		return ctx.Err() == nil
	}
	return c
}

// asError checks that err is an *Error of the kind and returns it.
func asError(t *testing.T, err error, kind Kind) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *poolswitch.Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("Kind = %q, want %q (error: %v)", e.Kind, kind, err)
	}
	return e
}
