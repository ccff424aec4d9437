package poolswitch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind classifies an *Error.
type Kind string

// The kinds of *Error.
const (
	// KindProxy is an answer the proxy made itself: it carries x-poolswitch-error, and
	// Error.Code names it.
	KindProxy Kind = "proxy"
	// KindUpstream is the upstream's non-2xx answer, relayed by the proxy.
	KindUpstream Kind = "upstream"
	// KindConnection means the proxy could not be reached, or the connection broke before the
	// answer was complete.
	KindConnection Kind = "connection"
	// KindTimeout means the client's own timeout (WithTimeout, http.Client.Timeout) passed, or
	// a stream was silent for longer than WithTimeout. A cancelled context or a passed context
	// deadline is reported as ctx.Err() instead.
	KindTimeout Kind = "timeout"
	// KindDecode means a 2xx answer could not be decoded as asked (JSON into the given value,
	// or a stream that is not text/event-stream or whose event is too large).
	KindDecode Kind = "decode"
	// KindInvalid means the client's configuration (base URL, options) or the call's
	// arguments are invalid; nothing was sent.
	KindInvalid Kind = "invalid"
)

// The codes of the errors the proxy makes itself (Error.Code, header x-poolswitch-error).
const (
	// CodeNoAvailableKeys (429; 503 from proxies before the x-should-retry contract): every key
	// is cooling down or disabled; Error.RetryAfter is the real time until the first one
	// returns, which may be hours (0 when none will return by itself). Retried.
	CodeNoAvailableKeys = "no_available_keys"
	// CodeUpstreamUnavailable (503): the outage guard holds requests while a probe checks
	// whether the upstream has recovered; Error.RetryAfter is short. Retried.
	CodeUpstreamUnavailable = "upstream_unavailable"
	// CodeOverloaded (503): the proxy sheds load (too many requests in flight); nothing was sent
	// upstream. Retried.
	CodeOverloaded = "overloaded"
	// CodeUpstreamUnreachable (502): the connection to the upstream failed on every attempt.
	CodeUpstreamUnreachable = "upstream_unreachable"
	// CodeUpstreamTimeout (504): the upstream did not answer in time.
	CodeUpstreamTimeout = "upstream_timeout"
	// CodePayloadTooLarge (413): the request body is over the proxy's limit.
	CodePayloadTooLarge = "payload_too_large"
	// CodeBadRequest (400): a request target the proxy refuses.
	CodeBadRequest = "bad_request"
	// CodeUnauthorized (401): the caller's token is missing or wrong.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden (403): the caller is not allowed on this pool, or a browser Origin the
	// proxy does not allow.
	CodeForbidden = "forbidden"
	// CodeNotFound (404): the admin API, an unknown key id or action.
	CodeNotFound = "not_found"
	// CodeHeadersTooLarge (431): the request's headers are over the proxy's limits.
	CodeHeadersTooLarge = "headers_too_large"
	// CodeNoSuchPool (404): no pool matches the path or the x-poolswitch-pool name (WithPool,
	// Request.Pool).
	CodeNoSuchPool = "no_such_pool"
	// CodeCallerRateLimited (429): the caller is over its rpm or max_concurrency; nothing was
	// sent upstream. Error.RetryAfter is the real wait; retried when it is at most 60 s.
	CodeCallerRateLimited = "caller_rate_limited"
	// CodeInternalError (500): a bug in the proxy.
	CodeInternalError = "internal_error"
)

// Error is the error of every failed call, except a cancelled context or a passed context
// deadline, which are returned as ctx.Err(). Read it with errors.As.
//
// For KindProxy and KindUpstream it carries the HTTP facts of the answer; for the other kinds
// Err holds the cause (see Unwrap).
type Error struct {
	// Kind tells what went wrong.
	Kind Kind
	// Method and Path name the call (Path without its query string); empty for KindInvalid
	// errors of the client's configuration.
	Method, Path string
	// StatusCode is the HTTP status of the answer, 0 when there was none.
	StatusCode int
	// Code is the proxy's error code (x-poolswitch-error), set only for KindProxy: Code != ""
	// means the proxy made the answer. See the Code* constants.
	Code string
	// Message is the human-readable reason: error.message from the answer's JSON body when
	// it has one, else a description of the failure.
	Message string
	// RetryAfter is, for KindProxy, the body's retry_after (else Retry-After); for
	// KindUpstream, the Retry-After header. 0 when absent.
	RetryAfter time.Duration
	// KeyID is the id of the key that produced a relayed upstream answer
	// (x-poolswitch-key-id), "" when none did.
	KeyID string
	// Attempts is the number of attempts the proxy made (x-poolswitch-attempts), 0 when it
	// did not say.
	Attempts int
	// RequestID is the proxy's id of the request (x-poolswitch-request-id), also in its access log:
	// quote it when reporting a failure. "" when the answer had none.
	RequestID string
	// Header holds the answer's headers, nil when there was no answer.
	Header http.Header
	// Body is the answer's body (an error body is read up to 1 MiB), nil when there was none.
	Body []byte
	// Err is the underlying cause, if any.
	Err error
}

// Error describes the failure. It never contains the client's token or the body.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("poolswitch: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	switch e.Kind {
	case KindProxy:
		fmt.Fprintf(&b, "proxy error %s (%d)", e.Code, e.StatusCode)
	case KindUpstream:
		fmt.Fprintf(&b, "upstream answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
		if e.KeyID != "" {
			fmt.Fprintf(&b, " (key %s)", e.KeyID)
		}
	case KindConnection:
		b.WriteString("connection to the proxy failed")
	case KindTimeout:
		b.WriteString("timed out")
	case KindDecode:
		b.WriteString("cannot decode the answer")
		if e.StatusCode != 0 {
			fmt.Fprintf(&b, " (%d)", e.StatusCode)
		}
	case KindInvalid:
		b.WriteString("invalid call")
	default:
		b.WriteString(string(e.Kind))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; retry after %v", e.RetryAfter)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause: a net error for KindConnection,
// context.DeadlineExceeded for KindTimeout, the JSON error for KindDecode; nil for answers.
func (e *Error) Unwrap() error { return e.Err }

// IsProxyError reports whether err is, or wraps, an *Error made by the proxy itself (its
// answer carried x-poolswitch-error). An upstream error relayed by the proxy is not one, even
// with the same status.
func IsProxyError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == KindProxy
}

// answerError builds the *Error for a non-2xx answer whose body has been read.
func answerError(method, path string, resp *http.Response, body []byte, token string) *Error {
	e := &Error{
		Kind:       KindUpstream,
		Method:     method,
		Path:       path,
		StatusCode: resp.StatusCode,
		KeyID:      resp.Header.Get(headerKeyID),
		Attempts:   attempts(resp.Header),
		RequestID:  resp.Header.Get(headerRequestID),
		Header:     resp.Header,
		Body:       body,
	}
	env := parseErrorBody(body)
	e.Message = redact(env.message, token)
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if code := resp.Header.Get(headerError); code != "" {
		e.Kind, e.Code = KindProxy, code
		if env.retryAfter != nil {
			e.RetryAfter = seconds(*env.retryAfter)
		}
	}
	return e
}

// redact replaces the token in a message that came from the network.
func redact(s, token string) string {
	if token == "" || !strings.Contains(s, token) {
		return s
	}
	return strings.ReplaceAll(s, token, "[token]")
}

const maxMessage = 300

type errorBody struct {
	message    string
	retryAfter *float64 // nil when absent or null
}

// parseErrorBody reads error.message (OpenAI, Anthropic, the proxy's envelope), a string
// "error", or a top-level "message"; and the envelope's retry_after. Anything else: empty.
func parseErrorBody(body []byte) errorBody {
	var doc struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	var out errorBody
	if json.Unmarshal(body, &doc) != nil {
		return out
	}
	var inner struct {
		Message    string   `json:"message"`
		RetryAfter *float64 `json:"retry_after"`
	}
	var text string
	switch {
	case json.Unmarshal(doc.Error, &inner) == nil && inner.Message != "":
		out.message = inner.Message
		out.retryAfter = inner.RetryAfter
	case json.Unmarshal(doc.Error, &text) == nil && text != "":
		out.message = text
	default:
		out.message = doc.Message
	}
	if len(out.message) > maxMessage {
		out.message = out.message[:maxMessage] + "..."
	}
	return out
}

// parseRetryAfter reads a Retry-After header: seconds (whole or not) or an HTTP date; 0 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	d, _ := parseRetryAfterOK(v, now)
	if d == time.Duration(math.MaxInt64) {
		return 0 // as seconds does for a number too large
	}
	return d
}

// parseRetryAfterOK is parseRetryAfter that tells whether v was readable. A number of seconds
// too large for a Duration gives the largest Duration.
func parseRetryAfterOK(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s >= 0) {
			return 0, false
		}
		if s > float64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return seconds(s), true
	}
	if t, err := http.ParseTime(v); err == nil {
		if !t.After(now) {
			return 0, true
		}
		return t.Sub(now), true
	}
	return 0, false
}

// seconds converts a non-negative, finite number of seconds; anything else is 0.
func seconds(s float64) time.Duration {
	if !(s > 0) || math.IsInf(s, 0) || s > float64(math.MaxInt64/int64(time.Second)) {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

func attempts(h http.Header) int {
	n, err := strconv.Atoi(h.Get(headerAttempts))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
