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

// DefaultTimeout is the deadline of a call when no WithTimeout option is given.
const DefaultTimeout = 600 * time.Second

// WithTimeout sets the deadline of every call (DefaultTimeout, 600 s, when not given): one
// deadline for the whole call, that is every attempt, every wait before a retry, and reading
// the whole answer of Do, DoJSON, GetJSON, PostJSON, Health, Status and Metrics. For Stream
// it bounds the time until the answer's headers arrive; after that, a silence of more than d
// between two chunks of the stream ends it with the timeout error. A call that runs out of
// time returns an *Error of KindTimeout. Zero means no deadline beyond the context's; the
// context always wins, and its end is returned as ctx.Err().
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d < 0 {
			return fmt.Errorf("WithTimeout: negative duration %v", d)
		}
		c.timeout = d
		return nil
	}
}

// WithPool sends "x-poolswitch-pool: <name>" with every proxied request (Do, DoJSON, GetJSON,
// PostJSON, Stream; not Health, Status or Metrics), so the proxy serves it from that pool
// whatever its path (the path is then forwarded as it is, no route prefix stripped).
// Request.Pool replaces it for one request. name is a pool name of the proxy's config
// (lowercase letters, digits, "_" and "-"); the client refuses only a name that cannot be a
// header value (empty, spaces, control or non-ASCII characters), and the proxy answers an
// unknown one with CodeNoSuchPool.
func WithPool(name string) Option {
	return func(c *Client) error {
		if !validPoolName(name) {
			return fmt.Errorf("WithPool: invalid pool name %q", name)
		}
		c.pool = name
		return nil
	}
}

// validPoolName reports whether name can be sent as a pool name: visible ASCII, no spaces.
// Whether the proxy has such a pool is its answer (CodeNoSuchPool), not the client's.
func validPoolName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' {
			return false
		}
	}
	return true
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

// WithMaxRetries sets how many times a call may be retried: DefaultMaxRetries (2, so at most 3
// attempts) when not given, 0 disables retries. Only these are retried:
//
//   - the proxy's own answers CodeNoAvailableKeys, CodeOverloaded, CodeUpstreamUnavailable and
//     CodeCallerRateLimited, unless they carry "x-should-retry: false";
//   - a failure to connect to the proxy (connection refused, DNS, a connection reset before
//     any byte of the answer).
//
// Never a relayed upstream answer, any other proxy code, or a timeout. Before retry n (0, 1,
// ...) the client waits the answer's named wait (its Retry-After header, else the body's
// retry_after) times a random factor in [1.0, 1.1), or, without one, min(8 s, 0.5 s * 2^n)
// times a random factor in [0.5, 1.0). A named wait over MaxRetryWait (60 s), or a wait that
// would end after the call's deadline (the context's or WithTimeout's), is not waited: the
// last answer or error is returned at once.
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
