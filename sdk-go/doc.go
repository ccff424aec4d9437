// Package poolswitch is the Go client for a PoolSwitch proxy: a proxy that holds a pool of API
// keys, injects one into every request it forwards to an upstream API, and fails over to another
// key when one is rate limited or out of quota.
//
// A Client sends requests to the proxy and reads the facts the proxy adds to them: the id of the
// key that answered (x-poolswitch-key-id) and the number of attempts it made
// (x-poolswitch-attempts). It uses the standard library only.
//
//	client := poolswitch.NewClient("http://127.0.0.1:8080")
//	var out map[string]any
//	err := client.PostJSON(ctx, "/v1/chat/completions", map[string]any{
//		"model":    "gpt-4o-mini",
//		"messages": []map[string]string{{"role": "user", "content": "hello"}},
//	}, &out)
//
// # Errors
//
// Every error a call returns is either ctx.Err() (the caller's context was cancelled or its
// deadline passed) or an *Error; use errors.As to read it. Error.Kind tells what went wrong:
//
//   - KindProxy: the proxy answered with an error of its own (it carries x-poolswitch-error);
//     Error.Code names it (CodeNoAvailableKeys, ...) and Error.RetryAfter says when to come back.
//   - KindUpstream: the upstream's non-2xx answer, relayed by the proxy; Error.StatusCode and
//     Error.Body are the upstream's, Error.KeyID the key that got it. An upstream 503 is never a
//     proxy error: only x-poolswitch-error makes one.
//   - KindConnection: the proxy could not be reached, or the connection broke.
//   - KindTimeout: the client's own timeout (WithTimeout, or http.Client.Timeout) passed.
//   - KindDecode: a 2xx answer could not be decoded as asked.
//   - KindInvalid: the client's configuration or the call's arguments are invalid; nothing was
//     sent. NewClient returns no error: an invalid base URL or option is reported this way by
//     every call.
//
// # Retries
//
// The proxy does the failover between keys; the client retries only what the proxy cannot: a
// failed connection to the proxy itself, and the proxy's no_available_keys, overloaded and
// upstream_unavailable answers, unless they carry "x-should-retry: false", when their
// retry_after is at most MaxRetryWait (60 s) and ends before the call's deadline (the
// context's, or WithTimeout's, if any). A longer wait is returned at once as the *Error, with
// RetryAfter set to the real wait. See WithMaxRetries.
//
// # Caller token
//
// WithToken (default: $POOLSWITCH_TOKEN) sends the caller token as x-poolswitch-token on every
// request, for a proxy with callers: in its config. It never shows in an error or in fmt output.
//
// # Streams
//
// Client.Stream returns an EventStream that yields server-sent events as they arrive.
package poolswitch
