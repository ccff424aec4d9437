package poolswitch

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DefaultMaxRetries is how many times a call is retried when no WithMaxRetries option is given.
const DefaultMaxRetries = 2

// An Option configures a Client. Options check their input; an invalid one makes every call of
// the Client return an *Error of KindInvalid that names the option.
type Option func(*Client) error

// WithHTTPClient makes the Client send its requests with hc (its transport, timeout and
// redirect policy) instead of the default client, which does not follow redirects: a 3xx from
// the upstream is returned as it is.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil *http.Client")
		}
		c.http = hc
		return nil
	}
}

// TokenEnv is the environment variable NewClient reads the caller token from when no
// WithToken option is given (unset or empty: no token).
const TokenEnv = "POOLSWITCH_TOKEN"

// WithToken sends the caller token as "x-poolswitch-token: <token>" with every request
// (Health, Status and Metrics too), for a proxy that authenticates its callers (callers: in
// its config). Without this option the token comes from $POOLSWITCH_TOKEN. The token is never
// part of an error message, and a Client printed with %v, %+v or %#v does not show it.
func WithToken(token string) Option {
	return func(c *Client) error {
		if err := checkToken(token); err != nil {
			return fmt.Errorf("WithToken: %w", err)
		}
		c.token = &secret{token}
		return nil
	}
}

func checkToken(token string) error {
	if token == "" {
		return errors.New("empty token")
	}
	if strings.ContainsAny(token, " \t\r\n\x00") {
		return errors.New("the token contains white space or control characters")
	}
	return nil
}

// secret holds the token behind a pointer, so that fmt prints a Client's token field as an
// address, never as its value.
type secret struct{ value string }

func (s *secret) String() string   { return "[token]" }
func (s *secret) GoString() string { return "[token]" }

// reveal returns the token, "" for none.
func (s *secret) reveal() string {
	if s == nil {
		return ""
	}
	return s.value
}

// WithTimeout bounds every call: Do, DoJSON, GetJSON, PostJSON, Health, Status and Metrics
// until the whole answer is read, Stream until the answer's headers arrive (the stream itself
// then lives as long as the call's context). A call that runs out of time returns an *Error of
// KindTimeout. Zero, the default, means no timeout beyond the context's.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d < 0 {
			return fmt.Errorf("WithTimeout: negative duration %v", d)
		}
		c.timeout = d
		return nil
	}
}

// WithHeader sends the header name: value with every request. A later WithHeader for the same
// name replaces the value; a header set on a Request replaces both.
func WithHeader(name, value string) Option {
	return func(c *Client) error {
		if !validHeaderName(name) {
			return fmt.Errorf("WithHeader: invalid header name %q", name)
		}
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			return fmt.Errorf("WithHeader: %s is set by the client itself", name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return fmt.Errorf("WithHeader: the value of %s contains a line break or NUL", name)
		}
		c.header.Set(name, value)
		return nil
	}
}

// WithMaxRetries sets how many times a call may be retried (DefaultMaxRetries when not given;
// 0 disables retries). Only two failures are retried: a connection to the proxy that failed
// (any method when the connection could not be made, idempotent methods only when it broke
// before an answer), and the proxy's no_available_keys, overloaded and upstream_unavailable
// answers without "x-should-retry: false" whose retry_after is known, at most MaxRetryWait and
// ends before the call's deadline. Connection retries wait a short, growing backoff; no retry
// waits past the deadline, and a longer wait is returned at once as the *Error.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("WithMaxRetries: negative count %d", n)
		}
		c.maxRetries = n
		return nil
	}
}

// validHeaderName reports whether name is an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}
