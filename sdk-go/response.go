package poolswitch

import (
	"encoding/json"
	"net/http"
)

// The headers of the wire contract.
const (
	headerKeyID     = "X-Poolswitch-Key-Id"
	headerRequestID = "X-Poolswitch-Request-Id"
	headerAttempts  = "X-Poolswitch-Attempts"
	headerError     = "X-Poolswitch-Error"
	// headerToken carries the caller token (WithToken, $POOLSWITCH_TOKEN).
	headerToken = "X-Poolswitch-Token"
	// headerPool names the pool of a request (WithPool, Request.Pool).
	headerPool = "X-Poolswitch-Pool"
	// headerShouldRetry is "true" or "false" on the proxy's answers that say whether to retry.
	headerShouldRetry = "X-Should-Retry"
)

// Response is an answer read whole.
type Response struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Header holds the answer's headers.
	Header http.Header
	// KeyID is the id of the key that produced the answer (x-poolswitch-key-id), "" for the
	// proxy's own endpoints and errors.
	KeyID string
	// Attempts is the number of attempts the proxy made (x-poolswitch-attempts; 1 means no
	// failover), 0 when it did not say.
	Attempts int
	// Body is the whole body (decompressed when the transport decompressed it).
	Body []byte

	method, path string
}

func newResponse(method, path string, resp *http.Response, body []byte) *Response {
	return &Response{
		StatusCode: resp.StatusCode,
		Header:     resp.Header,
		KeyID:      resp.Header.Get(headerKeyID),
		Attempts:   attempts(resp.Header),
		Body:       body,
		method:     method,
		path:       path,
	}
}

// Decode decodes the JSON body into v. An empty body leaves v unchanged; a body that is not
// JSON of v's shape returns an *Error of KindDecode.
func (r *Response) Decode(v any) error {
	if len(r.Body) == 0 || v == nil {
		return nil
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return &Error{
			Kind:       KindDecode,
			Method:     r.method,
			Path:       r.path,
			StatusCode: r.StatusCode,
			KeyID:      r.KeyID,
			Attempts:   r.Attempts,
			Header:     r.Header,
			Body:       r.Body,
			Err:        err,
		}
	}
	return nil
}
