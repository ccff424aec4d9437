package poolswitch

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
)

// EventStream is a streamed answer, read event by event as the events arrive:
//
//	stream, err := client.Stream(ctx, &poolswitch.Request{
//		Method: "POST", Path: "/v1/chat/completions", JSON: body,
//	})
//	if err != nil { ... }
//	defer stream.Close()
//	for stream.Next() {
//		ev := stream.Event()
//		...
//	}
//	if err := stream.Err(); err != nil { ... }
//
// Next, Event and Err must be called from one goroutine; Close may be called from any.
type EventStream struct {
	// StatusCode is the HTTP status of the answer (2xx).
	StatusCode int
	// Header holds the answer's headers.
	Header http.Header
	// KeyID is the id of the key that produced the stream (x-poolswitch-key-id).
	KeyID string
	// Attempts is the number of attempts the proxy made (x-poolswitch-attempts).
	Attempts int

	body         io.ReadCloser
	parser       *sseParser
	call         *call
	method, path string
	event        Event
	err          error
	over         bool
	closed       atomic.Bool
}

// Stream sends r (its headers, query, body and pool, as Do does) with Accept:
// text/event-stream, unless r sets an Accept header, and returns the answer as an EventStream
// once its headers have arrived. The retries and the deadline are those of Do: WithTimeout
// bounds the time until the headers arrive, and then each silence between two chunks of the
// stream. A non-2xx answer returns a nil stream and the *Error Do would return (KindProxy or
// KindUpstream, with the answer's status, headers and body); a 2xx answer that is not
// text/event-stream returns an *Error of KindDecode with the body. The caller must Close the
// stream.
func (c *Client) Stream(ctx context.Context, r *Request) (*EventStream, error) {
	if r == nil {
		return nil, &Error{Kind: KindInvalid, Message: "nil *Request"}
	}
	p, resp, cl, err := c.exchange(ctx, r, "text/event-stream")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cl.done()
		body, err := readBody(resp, false) // within the call's deadline, as in Do
		if err != nil {
			if e := cl.ended(p.method, p.path); e != nil {
				return nil, e
			}
		}
		return nil, answerError(p.method, p.path, resp, body, c.token.reveal())
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "text/event-stream" {
			defer cl.done()
			body, _ := readBody(resp, false)
			e := answerError(p.method, p.path, resp, body, c.token.reveal())
			e.Kind, e.Code = KindDecode, ""
			e.Message = "the answer is " + mt + ", not text/event-stream"
			return nil, e
		}
	}
	body, ok := cl.streaming(resp.Body)
	if !ok {
		resp.Body.Close()
		cl.done()
		return nil, cl.interrupted(p.method, p.path)
	}
	return &EventStream{
		StatusCode: resp.StatusCode,
		Header:     resp.Header,
		KeyID:      resp.Header.Get(headerKeyID),
		Attempts:   attempts(resp.Header),
		body:       body,
		parser:     newSSEParser(body),
		call:       cl,
		method:     p.method,
		path:       p.path,
	}, nil
}

// Next waits for the next event and reports whether there is one; Event returns it. Next
// returns false at the end of the stream, after an error (see Err) or after Close.
func (s *EventStream) Next() bool {
	if s.over {
		return false
	}
	ev, err := s.parser.next()
	if err == nil && !s.closed.Load() {
		s.event = ev
		return true
	}
	s.over = true
	s.event = Event{}
	s.err = s.failure(err)
	s.release()
	return false
}

// Event returns the event read by the last successful Next.
func (s *EventStream) Event() Event { return s.event }

// Err returns the error that ended the stream early: ctx.Err() when the context ended, an
// *Error of KindTimeout when the stream was silent for longer than WithTimeout, of
// KindConnection when the stream broke off, of KindDecode when an event was too large. It is nil after a complete stream or a Close.
func (s *EventStream) Err() error { return s.err }

// Close stops reading and releases the connection. It may be called at any time, from any
// goroutine, more than once; a Next blocked in another goroutine then returns false.
func (s *EventStream) Close() error {
	if !s.closed.Swap(true) {
		s.release()
	}
	return nil
}

func (s *EventStream) release() {
	s.body.Close()
	s.call.done()
}

func (s *EventStream) failure(err error) error {
	if err == nil || err == io.EOF || s.closed.Load() {
		return nil
	}
	if e := s.call.ended(s.method, s.path); e != nil {
		return e
	}
	var perr *Error
	if errors.As(err, &perr) {
		perr.Method, perr.Path, perr.StatusCode, perr.KeyID = s.method, s.path, s.StatusCode, s.KeyID
		return perr
	}
	e := connectionError(s.method, s.path, err, "the stream broke off")
	e.StatusCode, e.KeyID, e.Attempts, e.Header = s.StatusCode, s.KeyID, s.Attempts, s.Header
	return e
}
