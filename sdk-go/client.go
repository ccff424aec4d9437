package poolswitch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// maxErrorBody bounds how much of a non-2xx answer is read into Error.Body.
const maxErrorBody = 1 << 20

// defaultHTTPClient returns redirects as they are: following one could leave the proxy.
var defaultHTTPClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Client talks to one PoolSwitch proxy. It is safe for concurrent use; create it once.
type Client struct {
	base       *url.URL
	http       *http.Client
	token      *secret // nil: none; a pointer, so that %+v never prints the value
	timeout    time.Duration
	header     http.Header
	pool       string // WithPool; "" for none
	maxRetries int
	err        error // the first configuration error, returned by every call

	// random returns a number in [0, 1) for the jitter of retry waits; wait waits d unless
	// ctx ends first (false then). Tests replace both.
	random func() float64
	wait   func(ctx context.Context, d time.Duration) bool
}

// NewClient returns a client of the proxy at baseURL ("http://127.0.0.1:8080"; a base path,
// as in "https://gw.example.com/poolswitch", is kept). It never fails: an invalid baseURL or
// option makes every call return an *Error of KindInvalid, without sending anything.
func NewClient(baseURL string, opts ...Option) *Client {
	c := &Client{
		http:       defaultHTTPClient,
		header:     make(http.Header),
		timeout:    DefaultTimeout,
		maxRetries: DefaultMaxRetries,
		random:     defaultRandom,
		wait:       sleep,
	}
	c.base, c.err = parseBaseURL(baseURL)
	for i, opt := range opts {
		var err error
		if opt == nil {
			err = fmt.Errorf("option %d is nil", i)
		} else {
			err = opt(c)
		}
		if err != nil && c.err == nil {
			c.err = err
		}
	}
	if c.token == nil {
		if token := os.Getenv(TokenEnv); token != "" {
			if err := checkToken(token); err != nil {
				if c.err == nil {
					c.err = fmt.Errorf("%s: %w", TokenEnv, err)
				}
			} else {
				c.token = &secret{token}
			}
		}
	}
	return c
}

// Do sends r and reads the whole answer. A 2xx answer returns a Response and a nil error. Any
// other status is an error: Do returns a non-nil *Error AND the Response (as go-github's
// CheckResponse does), so that the caller can still read the answer: KindProxy when the proxy
// made it (Error.Code, Error.RetryAfter), KindUpstream when it relays the upstream's
// (Error.StatusCode, Error.Body, Error.KeyID, Error.Attempts). Without an answer (connection
// failure, timeout, cancelled context) the Response is nil.
func (c *Client) Do(ctx context.Context, r *Request) (*Response, error) {
	if r == nil {
		return nil, &Error{Kind: KindInvalid, Message: "nil *Request"}
	}
	return c.do(ctx, r, "")
}

// DoJSON sends in (unless nil) as a JSON body and decodes a 2xx answer's JSON body into out
// (unless nil). Errors are those of Do; a body that does not decode into out is KindDecode.
func (c *Client) DoJSON(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.do(ctx, &Request{Method: method, Path: path, JSON: in}, "application/json")
	if err != nil {
		return err
	}
	return resp.Decode(out)
}

// GetJSON sends GET path and decodes the JSON answer into out; see DoJSON.
func (c *Client) GetJSON(ctx context.Context, path string, out any) error {
	return c.DoJSON(ctx, http.MethodGet, path, nil, out)
}

// PostJSON sends POST path with in as its JSON body and decodes the JSON answer into out; see
// DoJSON.
func (c *Client) PostJSON(ctx context.Context, path string, in, out any) error {
	return c.DoJSON(ctx, http.MethodPost, path, in, out)
}

func (c *Client) do(ctx context.Context, r *Request, accept string) (*Response, error) {
	p, resp, cl, err := c.exchange(ctx, r, accept)
	if err != nil {
		return nil, err
	}
	defer cl.done()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	body, err := readBody(resp, ok)
	if err != nil {
		if e := cl.ended(p.method, p.path); e != nil {
			return nil, e
		}
		cerr := connectionError(p.method, p.path, err, "the answer broke off")
		cerr.StatusCode, cerr.KeyID, cerr.Header = resp.StatusCode, resp.Header.Get(headerKeyID), resp.Header
		return nil, cerr
	}
	out := newResponse(p.method, p.path, resp, body)
	if !ok {
		return out, answerError(p.method, p.path, resp, body, c.token.reveal())
	}
	return out, nil
}

// readBody reads and closes the body: whole for a 2xx answer, up to maxErrorBody otherwise.
func readBody(resp *http.Response, whole bool) ([]byte, error) {
	defer resp.Body.Close()
	if whole {
		return io.ReadAll(resp.Body)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
}

// exchange prepares r, sends it and returns the answer's headers, retrying as documented on
// WithMaxRetries. The caller owns resp.Body and must call cl.done.
func (c *Client) exchange(ctx context.Context, r *Request, accept string) (*prepared, *http.Response, *call, error) {
	p, err := c.prepare(r, accept)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	cl := c.newCall(ctx)
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(cl.ctx, p.method, p.url, p.bodyReader())
		if err != nil {
			cl.done()
			return nil, nil, nil, &Error{Kind: KindInvalid, Method: p.method, Path: p.path, Err: err}
		}
		req.Header = p.header.Clone()
		resp, err := c.http.Do(req)
		if err != nil {
			if e := cl.ended(p.method, p.path); e != nil {
				cl.done()
				return nil, nil, nil, e
			}
			if try < c.maxRetries && retryableConnection(err) {
				if wait := c.backoff(try); cl.fits(wait) && cl.sleep(wait) {
					continue
				}
			}
			cl.done()
			if e := cl.ended(p.method, p.path); e != nil {
				return nil, nil, nil, e
			}
			return nil, nil, nil, connectionError(p.method, p.path, err, "")
		}
		if try < c.maxRetries && mayRetry(resp) {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
			if rerr != nil { // the answer broke off: do returns that as the call's error
				resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{rerr}))
				return p, resp, cl, nil
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if wait, ok := c.retryWait(try, resp, body); ok && cl.fits(wait) {
				if cl.sleep(wait) {
					continue
				}
				cl.done() // only the context or the timeout ends a wait
				return nil, nil, nil, cl.interrupted(p.method, p.path)
			}
		}
		return p, resp, cl, nil
	}
}
