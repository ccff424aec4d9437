package poolswitch

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	stream, err := NewClient(srv.URL).Stream(context.Background(), "POST", "/v1/chat/completions", map[string]any{"stream": true})
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
			stream, err := NewClient(srv.URL).Stream(context.Background(), "POST", "/v1/x", nil)
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
			stream, err := NewClient(srv.URL).Stream(ctx, "GET", "/v1/events", nil)
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

func TestStreamTimeoutBoundsHeadersOnly(t *testing.T) {
	gate := make(chan struct{})
	srv := newRecorder(t, sseHandler([]string{"data: 1\n\n", "data: 2\n\n"}, gate))
	stream, err := NewClient(srv.URL, WithTimeout(time.Second)).Stream(context.Background(), "GET", "/e", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	time.Sleep(1200 * time.Millisecond) // past the timeout: the stream must live on
	close(gate)
	var got []string
	for stream.Next() {
		got = append(got, stream.Event().Data)
	}
	if err := stream.Err(); err != nil || fmt.Sprint(got) != "[1 2]" {
		t.Errorf("events %v, err %v", got, err)
	}

	hang := hangingServer(t, false)
	_, err = NewClient(hang.URL, WithTimeout(50*time.Millisecond)).Stream(context.Background(), "GET", "/e", nil)
	asError(t, err, KindTimeout)
}
