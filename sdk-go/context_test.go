package poolswitch

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hangingServer answers nothing until the client goes away; with headersFirst it sends the
// headers and part of the body first.
func hangingServer(t *testing.T, headersFirst bool) *recorder {
	t.Helper()
	stop := make(chan struct{})
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if headersFirst {
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"partial":`))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	return srv
}

func TestContextEndsTheCall(t *testing.T) {
	tests := []struct {
		name         string
		headersFirst bool
		ctx          func() (context.Context, context.CancelFunc)
		want         error
	}{
		{"cancelled before the call", false, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"cancelled while waiting for the answer", false, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline while waiting for the answer", false, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"deadline while reading the body", true, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := hangingServer(t, tt.headersFirst)
			ctx, cancel := tt.ctx()
			defer cancel()
			// WithTimeout longer than the context: the context's end is what the caller sees.
			_, err := NewClient(srv.URL, WithTimeout(time.Minute)).Do(ctx, &Request{Path: "/v1/x"})
			if err != tt.want {
				t.Fatalf("err = %v (%T), want %v itself", err, err, tt.want)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	tests := []struct {
		name         string
		headersFirst bool
		opts         []Option
		want         string
		isDeadline   bool // errors.Is(err, context.DeadlineExceeded)
	}{
		{"WithTimeout before the answer", false, []Option{WithTimeout(50 * time.Millisecond)}, "within 50ms", true},
		{"WithTimeout while reading the body", true, []Option{WithTimeout(50 * time.Millisecond)}, "within 50ms", true},
		{"http.Client.Timeout", false, []Option{WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond})}, "Client.Timeout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := hangingServer(t, tt.headersFirst)
			start := time.Now()
			_, err := NewClient(srv.URL, tt.opts...).Do(context.Background(), &Request{Path: "/v1/x"})
			e := asError(t, err, KindTimeout)
			if !strings.Contains(e.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", e.Error(), tt.want)
			}
			if tt.isDeadline && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, context.DeadlineExceeded) = false")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestCancelDuringRetryWait(t *testing.T) {
	srv := newRecorder(t, answer(503, noKeysBody, "X-Poolswitch-Error", "no_available_keys", "Retry-After", "20"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := NewClient(srv.URL).PostJSON(ctx, "/v1/x", nil, nil)
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, want the wait cut short", d)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
