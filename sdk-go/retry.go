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
	defaultBackoff = 100 * time.Millisecond
	maxBackoff     = 2 * time.Second
)

// MaxRetryWait is the longest the client ever waits on its own before retrying a proxy
// answer; an answer that asks for longer is returned at once.
const MaxRetryWait = 60 * time.Second

// retriedCodes are the proxy's answers worth asking again after their wait: nothing was sent
// upstream for them.
var retriedCodes = map[string]bool{
	CodeNoAvailableKeys:     true,
	CodeOverloaded:          true,
	CodeUpstreamUnavailable: true,
}

// backoff is the wait before connection retry number try (0-based): exponential from base,
// capped, with jitter in its upper half.
func backoff(base time.Duration, try int) time.Duration {
	d := base
	for i := 0; i < try && d < maxBackoff; i++ {
		d *= 2
	}
	if d > maxBackoff {
		d = maxBackoff
	}
	if d <= 1 {
		return d
	}
	return d/2 + time.Duration(rand.Int63n(int64(d/2)))
}

// retryableConnection reports whether a failed exchange with the proxy may be tried again: a
// connection that could not be made (nothing was sent), for any method; a connection that
// broke before an answer, for idempotent methods only. Timeouts are never retried.
func retryableConnection(err error, method string) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var op *net.OpError
	isNet := errors.As(err, &op)
	if isNet && op.Op == "dial" {
		return true
	}
	if !isNet && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false // not a connection failure (TLS, protocol): trying again will not help
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
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

// retryWait returns the wait before retrying a proxy answer: the body's retry_after, else its
// Retry-After; false when neither is known or the wait is over MaxRetryWait.
func retryWait(resp *http.Response, body []byte) (time.Duration, bool) {
	var wait time.Duration
	if s := parseErrorBody(body).retryAfter; s != nil {
		if !(*s >= 0) || *s > MaxRetryWait.Seconds() {
			return 0, false
		}
		wait = seconds(*s)
	} else {
		v := strings.TrimSpace(resp.Header.Get("Retry-After"))
		wait = parseRetryAfter(v, time.Now())
		if v == "" || (wait == 0 && v != "0") {
			return 0, false
		}
	}
	return wait, wait <= MaxRetryWait
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
