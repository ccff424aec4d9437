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
// A non-2xx answer is an error: Do returns a non-nil *Error AND the *Response, so that the
// answer can still be read (as go-github's CheckResponse does); DoJSON, GetJSON and PostJSON
// return the *Error; Stream returns it with a nil stream. Every error a call returns is either
// ctx.Err() (the caller's context was cancelled or its deadline passed) or an *Error; use
// errors.As to read it. Error.Kind tells what went wrong:
//
//   - KindProxy: the proxy answered with an error of its own (it carries x-poolswitch-error);
//     Error.Code names it and Error.RetryAfter says when to come back (the body's
//     retry_after, else Retry-After). IsProxyError reports it.
//   - KindUpstream: the upstream's non-2xx answer, relayed by the proxy; Error.StatusCode and
//     Error.Body are the upstream's, Error.KeyID the key that got it, Error.Attempts the
//     proxy's attempts. An upstream 503 is never a proxy error: only x-poolswitch-error makes
//     one.
//   - KindConnection: the proxy could not be reached, or the connection broke.
//   - KindTimeout: the client's own timeout (WithTimeout, or http.Client.Timeout) passed.
//   - KindDecode: a 2xx answer could not be decoded as asked.
//   - KindInvalid: the client's configuration or the call's arguments are invalid; nothing was
//     sent. NewClient returns no error: an invalid base URL or option is reported this way by
//     every call.
//
// The proxy's codes, each a constant: CodeNoAvailableKeys ("no_available_keys"),
// CodeOverloaded ("overloaded"), CodeUpstreamUnavailable ("upstream_unavailable"),
// CodeCallerRateLimited ("caller_rate_limited"), CodeUpstreamUnreachable
// ("upstream_unreachable"), CodeUpstreamTimeout ("upstream_timeout"), CodePayloadTooLarge
// ("payload_too_large"), CodeBadRequest ("bad_request"), CodeUnauthorized ("unauthorized"),
// CodeForbidden ("forbidden"), CodeNotFound ("not_found"), CodeNoSuchPool ("no_such_pool"),
// CodeHeadersTooLarge ("headers_too_large") and CodeInternalError ("internal_error").
//
// # Timeout
//
// WithTimeout (default DefaultTimeout, 600 s) is one deadline for the whole call: every
// attempt, every wait before a retry, and reading the whole answer. For a Stream it bounds the
// time until the answer's headers arrive; after that, each silence between two chunks longer
// than the timeout ends the stream with a KindTimeout error. WithTimeout(0) means no deadline
// beyond the context's; the context always wins.
//
// # Retries
//
// The proxy does the failover between keys; the client retries only what the proxy cannot:
// the proxy's no_available_keys, overloaded, upstream_unavailable and caller_rate_limited
// answers unless they carry "x-should-retry: false", and a failure to connect to the proxy
// (refused, DNS, reset before any byte of the answer). Never a relayed upstream answer, another
// proxy code or a timeout. WithMaxRetries sets how many (default 2, so at most 3 attempts).
// Before retry n the client waits the answer's named wait (Retry-After, else retry_after) times
// U(1.0, 1.1), or else min(8 s, 0.5 s * 2^n) times U(0.5, 1.0). A named wait over
// MaxRetryWait (60 s), or a wait that would end after the call's deadline, is not waited: the
// *Error is returned at once, with RetryAfter set to the real wait.
//
// # Pools
//
// A proxy serves several pools, by route prefix ("/openai/v1/...") or by the
// x-poolswitch-pool header, which WithPool sends on every proxied request and Request.Pool on
// one. Status lists every pool with its keys, and every caller's use of its limits.
//
// # Caller token
//
// WithToken (default: $POOLSWITCH_TOKEN) sends the caller token as x-poolswitch-token on every
// request, for a proxy with callers: in its config. It never shows in an error or in fmt output.
//
// # Streams
//
// Client.Stream takes the same *Request as Do (headers, query, body, pool) and returns an
// EventStream that yields server-sent events as they arrive.
package poolswitch
