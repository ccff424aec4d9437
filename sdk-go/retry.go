package poolswitch

import (
	"errors"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// backoffBase and backoffCap shape the wait before a retry that names no wait:
	// min(backoffCap, backoffBase * 2^n), jittered.
	backoffBase = 500 * time.Millisecond
	backoffCap  = 8 * time.Second
)

// MaxRetryWait is the longest the client ever waits before a retry: an answer that names a
// longer wait is returned at once, and a jittered wait is cut to it.
const MaxRetryWait = 60 * time.Second

// retriedCodes are the proxy's answers worth asking again after their wait: nothing was sent
// upstream for them.
var retriedCodes = map[string]bool{
	CodeNoAvailableKeys:     true,
	CodeOverloaded:          true,
	CodeUpstreamUnavailable: true,
	CodeCallerRateLimited:   true,
}

// defaultRandom is the jitter's source: a number in [0, 1). math/rand's top-level functions
// are safe for concurrent use.
func defaultRandom() float64 { return rand.Float64() }

// backoff is the wait before retry n (0-based) when no wait was named:
// min(8 s, 0.5 s * 2^n) * U(0.5, 1.0).
func (c *Client) backoff(n int) time.Duration {
	d := backoffCap
	if n < 5 {
		d = backoffBase << uint(n)
		if d > backoffCap {
			d = backoffCap
		}
	}
	return time.Duration(float64(d) * (0.5 + 0.5*c.random()))
}

// jittered is the wait before a retry when the answer named wait: wait * U(1.0, 1.1), cut to
// MaxRetryWait.
func (c *Client) jittered(wait time.Duration) time.Duration {
	d := time.Duration(float64(wait) * (1 + 0.1*c.random()))
	if d > MaxRetryWait {
		d = MaxRetryWait
	}
	return d
}

// retryableConnection reports whether a failed exchange with the proxy may be tried again: a
// connection that could not be made (refused, DNS), or one that broke before any byte of the
// answer (reset, EOF). Timeouts and other failures (TLS, protocol) are never retried.
func retryableConnection(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// connectionError maps a failed exchange (no answer, or a broken one) to an *Error.
func connectionError(method, path string, err error, message string) *Error {
	kind := KindConnection
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		kind = KindTimeout
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its message repeats the URL, query string included
	}
	return &Error{Kind: kind, Method: method, Path: path, Message: message, Err: err}
}

// mayRetry reports whether the retry rules consider an answer: one of the retried proxy codes,
// not marked "x-should-retry: false".
func mayRetry(resp *http.Response) bool {
	should := strings.ToLower(strings.TrimSpace(resp.Header.Get(headerShouldRetry)))
	return retriedCodes[resp.Header.Get(headerError)] && should != "false"
}

// namedWait returns the wait a proxy answer names: its Retry-After header, else the body's
// retry_after; false when it names none.
func namedWait(resp *http.Response, body []byte) (time.Duration, bool) {
	if v := strings.TrimSpace(resp.Header.Get("Retry-After")); v != "" {
		if wait, ok := parseRetryAfterOK(v, time.Now()); ok {
			return wait, true
		}
	}
	if s := parseErrorBody(body).retryAfter; s != nil && *s >= 0 {
		if *s > MaxRetryWait.Seconds() {
			return MaxRetryWait + time.Second, true // over the bound; the exact value is not needed
		}
		return seconds(*s), true
	}
	return 0, false
}

// retryWait returns the wait before retry n of a retried proxy answer; false when the answer
// names a wait over MaxRetryWait, so that it must be returned at once.
func (c *Client) retryWait(n int, resp *http.Response, body []byte) (time.Duration, bool) {
	wait, named := namedWait(resp, body)
	if !named {
		return c.backoff(n), true
	}
	if wait > MaxRetryWait {
		return 0, false
	}
	return c.jittered(wait), true
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
