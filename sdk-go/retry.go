package poolswitch

import (
	"errors"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"time"
)

const (
	defaultBackoff = 100 * time.Millisecond
	maxBackoff     = 2 * time.Second
)

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

// noAvailableKeysWait returns the Retry-After of a no_available_keys answer, else 0.
func noAvailableKeysWait(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusServiceUnavailable ||
		resp.Header.Get(headerError) != CodeNoAvailableKeys {
		return 0
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
}
