package poolswitch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Request is one call for Client.Do or Client.Stream.
type Request struct {
	// Method is the HTTP method; "" means GET.
	Method string
	// Path is appended to the base URL's path ("/v1/models"). It must start with "/" and may
	// carry a query string; it is sent as written, percent-encoding included.
	Path string
	// Query is added to the path's query string.
	Query url.Values
	// Header holds headers for this request only; they replace the client's (WithHeader,
	// WithToken) of the same name.
	Header http.Header
	// Body is the request body, read whole before the request is sent (the proxy buffers it
	// anyway), so that the request can be retried; closed then if it is an io.Closer, as
	// net/http does. Set Body or JSON, not both.
	Body io.Reader
	// JSON, when not nil, is encoded as the body, with Content-Type: application/json.
	JSON any
	// Pool, when not "", sends "x-poolswitch-pool: <Pool>" with this request, in place of the
	// client's WithPool.
	Pool string

	endpoint bool // one of the proxy's own endpoints (/health, /status, /metrics): no pool
}

// prepared is a Request checked and encoded once, sent on every attempt.
type prepared struct {
	method string
	url    string
	path   string // the request's path without its query, for errors
	header http.Header
	body   []byte
}

const userAgent = "poolswitch-go"

// prepare checks r and encodes it; accept is the default Accept header ("" for none).
func (c *Client) prepare(r *Request, accept string) (*prepared, error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	path, _, _ := strings.Cut(r.Path, "?")
	p := &prepared{method: method, path: path}
	invalid := func(msg string, err error) error {
		return &Error{Kind: KindInvalid, Method: method, Path: path, Message: msg, Err: err}
	}
	if c.err != nil {
		return nil, invalid("invalid client configuration", c.err)
	}
	if c.base == nil {
		return nil, invalid("a Client must be made by NewClient", nil)
	}
	if !validHeaderName(method) {
		return nil, invalid(fmt.Sprintf("invalid method %q", method), nil)
	}
	u, err := c.target(r.Path, r.Query)
	if err != nil {
		return nil, invalid("invalid path", err)
	}
	p.url = u

	h := make(http.Header, len(c.header)+4)
	h.Set("User-Agent", userAgent)
	if accept != "" {
		h.Set("Accept", accept)
	}
	for name, values := range c.header {
		h[name] = append([]string(nil), values...)
	}
	if c.token != nil {
		h.Set(headerToken, c.token.reveal())
	}
	if r.Pool != "" && !validPoolName(r.Pool) {
		return nil, invalid(fmt.Sprintf("invalid pool name %q", r.Pool), nil)
	}
	if pool := firstOf(r.Pool, c.pool); pool != "" && !r.endpoint {
		h.Set(headerPool, pool)
	}
	switch {
	case r.JSON != nil && r.Body != nil:
		return nil, invalid("set Request.Body or Request.JSON, not both", nil)
	case r.JSON != nil:
		if p.body, err = json.Marshal(r.JSON); err != nil {
			return nil, invalid("cannot encode the JSON body", err)
		}
		h.Set("Content-Type", "application/json")
	case r.Body != nil:
		p.body, err = io.ReadAll(r.Body)
		if closer, ok := r.Body.(io.Closer); ok {
			_ = closer.Close()
		}
		if err != nil {
			return nil, invalid("cannot read the body", err)
		}
	}
	for name, values := range r.Header {
		if !validHeaderName(name) {
			return nil, invalid(fmt.Sprintf("invalid header name %q", name), nil)
		}
		h[http.CanonicalHeaderKey(name)] = append([]string(nil), values...)
	}
	p.header = h
	return p, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// target joins the base URL and a request path (with its optional query) plus query values.
func (c *Client) target(path string, query url.Values) (string, error) {
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("%q does not start with /", path)
	}
	if strings.HasPrefix(path, "//") {
		return "", fmt.Errorf("%q starts with //", path)
	}
	if strings.ContainsAny(path, "#\x00\r\n") {
		return "", fmt.Errorf("%q contains #, NUL or a line break", path)
	}
	rawPath, rawQuery, _ := strings.Cut(path, "?")
	decoded, err := url.PathUnescape(rawPath)
	if err != nil {
		return "", err
	}
	u := *c.base
	u.Path = c.base.Path + decoded
	u.RawPath = c.base.EscapedPath() + rawPath
	if q := query.Encode(); q != "" {
		if rawQuery != "" {
			rawQuery += "&"
		}
		rawQuery += q
	}
	u.RawQuery = rawQuery
	return u.String(), nil
}

// parseBaseURL checks the proxy's URL: http or https, a host, no user info, query or
// fragment. The URL is never repeated in a message (it could carry a secret).
func parseBaseURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		return nil, errors.New("base URL: not an absolute URL; want one like http://127.0.0.1:8080")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("base URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("base URL: the scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return nil, errors.New("base URL: no host")
	case u.User != nil:
		return nil, errors.New("base URL: user info is not allowed; use WithToken or WithHeader")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("base URL: a query string or fragment is not allowed")
	}
	escaped := strings.TrimRight(u.EscapedPath(), "/")
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if escaped != u.EscapedPath() {
		u.RawPath = escaped
	}
	return u, nil
}

// bodyReader returns a fresh reader of the prepared body for one attempt.
func (p *prepared) bodyReader() io.Reader {
	if p.body == nil {
		return nil
	}
	return bytes.NewReader(p.body)
}
