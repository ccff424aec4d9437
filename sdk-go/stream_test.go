package poolswitch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sseHandler writes each event and flushes it; before event i > 0 it waits for gate (when not
// nil) to receive, so a test can check what the client has seen at that point.
func sseHandler(events []string, gate chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Poolswitch-Key-Id", "b")
		w.Header().Set("X-Poolswitch-Attempts", "2")
		w.WriteHeader(200)
		for i, ev := range events {
			if i > 0 && gate != nil {
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
			_, _ = io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	}
}

func TestStreamDeliversEventsAsTheyArrive(t *testing.T) {
	gate := make(chan struct{})
	events := []string{"data: one\n\n", ": ping\n\n", "event: two\nid: 2\ndata: 2a\ndata: 2b\n\n", "data: [DONE]\n\n"}
	srv := newRecorder(t, sseHandler(events, gate))
	stream, err := NewClient(srv.URL).Stream(context.Background(), &Request{Method: "POST", Path: "/v1/chat/completions", JSON: map[string]any{"stream": true}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if stream.StatusCode != 200 || stream.KeyID != "b" || stream.Attempts != 2 || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("stream facts: %+v", stream)
	}
	// The server sends nothing more until the gate opens: the first event must come alone.
	if !stream.Next() {
		t.Fatalf("no first event: %v", stream.Err())
	}
	if got := stream.Event(); got != (Event{Data: "one"}) {
		t.Errorf("first event = %#v", got)
	}
	close(gate)
	var rest []Event
	for stream.Next() {
		rest = append(rest, stream.Event())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	want := []Event{{Type: "two", ID: "2", Data: "2a\n2b"}, {ID: "2", Data: "[DONE]"}}
	if !reflect.DeepEqual(rest, want) {
		t.Errorf("events = %#v, want %#v", rest, want)
	}
	if stream.Next() || stream.Event() != (Event{}) {
		t.Error("Next after the end returned true or an event")
	}
}

func TestStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    Kind
		code    string
		message string
	}{
		{"proxy error", answer(503, noKeysBody, "X-Poolswitch-Error", "no_available_keys", "Retry-After", "30"),
			KindProxy, CodeNoAvailableKeys, "m"},
		{"upstream error", answer(429, `{"error":{"message":"slow down"}}`, "X-Poolswitch-Key-Id", "a"),
			KindUpstream, "", "slow down"},
		{"not an event stream", answer(200, `{"id":"x"}`, "Content-Type", "application/json"),
			KindDecode, "", "the answer is application/json, not text/event-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, tt.handler)
			stream, err := NewClient(srv.URL, WithMaxRetries(0)).Stream(context.Background(), &Request{Method: "POST", Path: "/v1/x"})
			if stream != nil {
				t.Error("a stream was returned with the error")
			}
			e := asError(t, err, tt.kind)
			if e.Code != tt.code || e.Message != tt.message || len(e.Body) == 0 {
				t.Errorf("error = %+v", e)
			}
		})
	}
}

func TestStreamEndsEarly(t *testing.T) {
	tests := []struct {
		name string
		// end is called once the first event has been read.
		end     func(cancel context.CancelFunc, s *EventStream)
		handler func(release chan struct{}) http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{
			name:    "Close",
			end:     func(_ context.CancelFunc, s *EventStream) { s.Close() },
			handler: blockingStream,
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("Err() = %v after Close, want nil", err)
				}
			},
		},
		{
			name:    "Close from another goroutine",
			end:     func(_ context.CancelFunc, s *EventStream) { time.AfterFunc(20*time.Millisecond, func() { s.Close() }) },
			handler: blockingStream,
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Errorf("Err() = %v after Close, want nil", err)
				}
			},
		},
		{
			name:    "context cancelled",
			end:     func(cancel context.CancelFunc, _ *EventStream) { time.AfterFunc(20*time.Millisecond, cancel) },
			handler: blockingStream,
			check: func(t *testing.T, err error) {
				if err != context.Canceled {
					t.Errorf("Err() = %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "connection cut",
			end:  func(context.CancelFunc, *EventStream) {},
			handler: func(chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "data: one\n\ndata: half")
					w.(http.Flusher).Flush()
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close() // no last chunk: the body ends abruptly
					}
				}
			},
			check: func(t *testing.T, err error) {
				e := asError(t, err, KindConnection)
				if e.StatusCode != 200 || !strings.Contains(e.Error(), "broke off") {
					t.Errorf("error = %v", e)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := newRecorder(t, tt.handler(release))
			t.Cleanup(func() { close(release) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream, err := NewClient(srv.URL).Stream(ctx, &Request{Path: "/v1/events"})
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			if !stream.Next() || stream.Event().Data != "one" {
				t.Fatalf("first event: %v %v", stream.Event(), stream.Err())
			}
			tt.end(cancel, stream)
			done := make(chan bool)
			go func() { done <- stream.Next() }()
			select {
			case more := <-done:
				if more {
					t.Fatalf("Next() = true, event %#v", stream.Event())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Next did not return")
			}
			tt.check(t, stream.Err())
			if err := stream.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// blockingStream sends one event, then nothing until released or the client leaves.
func blockingStream(release chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

// tickingStream sends n events, one every interval, then nothing until the client leaves.
func tickingStream(n int, interval time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for i := 0; i < n; i++ {
			select {
			case <-time.After(interval):
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}
}

func TestStreamTimeout(t *testing.T) {
	// Events every 50 ms for 600 ms, then silence: the stream outlives WithTimeout(300ms)
	// while it is lively, and ends with the timeout once silent for longer than it.
	srv := newRecorder(t, tickingStream(12, 50*time.Millisecond))
	stream, err := NewClient(srv.URL, WithTimeout(300*time.Millisecond)).Stream(context.Background(), &Request{Path: "/e"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	start := time.Now()
	n := 0
	for stream.Next() {
		n++
	}
	e := asError(t, stream.Err(), KindTimeout)
	if n != 12 || !strings.Contains(e.Error(), "silent for 300ms") || !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("%d events, then %v", n, e)
	}
	if d := time.Since(start); d < 850*time.Millisecond || d > 5*time.Second {
		t.Errorf("the stream ended after %v, want about 900ms", d)
	}

	// Before the headers, WithTimeout bounds the whole wait.
	hang := hangingServer(t, false)
	_, err = NewClient(hang.URL, WithTimeout(50*time.Millisecond)).Stream(context.Background(), &Request{Path: "/e"})
	if e := asError(t, err, KindTimeout); !strings.Contains(e.Error(), "within 50ms") {
		t.Errorf("err = %v", e)
	}

	// WithTimeout(0): no deadline but the context's.
	gate := make(chan struct{})
	srv = newRecorder(t, sseHandler([]string{"data: 1\n\n", "data: 2\n\n"}, gate))
	stream, err = NewClient(srv.URL, WithTimeout(0)).Stream(context.Background(), &Request{Path: "/e"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	time.AfterFunc(100*time.Millisecond, func() { close(gate) })
	var got []string
	for stream.Next() {
		got = append(got, stream.Event().Data)
	}
	if err := stream.Err(); err != nil || fmt.Sprint(got) != "[1 2]" {
		t.Errorf("events %v, err %v", got, err)
	}
}

func TestStreamTakesARequest(t *testing.T) {
	srv := newRecorder(t, sseHandler([]string{"data: 1\n\n"}, nil))
	c := NewClient(srv.URL, WithPool("openai"), WithHeader("X-Team", "ads"))
	stream, err := c.Stream(context.Background(), &Request{
		Method: "POST", Path: "/v1/chat/completions?a=1", Query: url.Values{"b": {"2"}},
		Header: http.Header{"X-Trace-Id": {"t-1"}}, JSON: map[string]bool{"stream": true}, Pool: "anthropic",
	})
	if err != nil {
		t.Fatal(err)
	}
	stream.Close()
	r := srv.requests()[0]
	if r.Method != "POST" || r.RequestURI != "/v1/chat/completions?a=1&b=2" || r.Body != `{"stream":true}` {
		t.Errorf("sent %s %s %q", r.Method, r.RequestURI, r.Body)
	}
	for name, want := range map[string]string{"X-Trace-Id": "t-1", "X-Team": "ads", "X-Poolswitch-Pool": "anthropic",
		"Accept": "text/event-stream", "Content-Type": "application/json"} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := c.Stream(context.Background(), nil); err == nil {
		t.Error("Stream(nil) did not fail")
	}
}
