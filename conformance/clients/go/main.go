// Command client is the conformance client for the Go SDK: every call through its methods, one
// JSON line in and out per request (conformance/README.md, "The client protocol").
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	poolswitch "github.com/SlasshyOverhere/poolswitch/sdk-go"
)

type request struct {
	ID, Call, Method, Path, Text string
	Token                        string // the caller token, "" for none
	ProxyURL                     string `json:"proxy_url"`
	BodyB64                      string `json:"body_b64"`
	Headers                      map[string]string
	JSON                         any
	Timeout                      float64
}

type object = map[string]any

// answer puts an answer's status, headers and body (as received; the runner reads it) in r.
func answer(r object, status int, h http.Header, body []byte) {
	r["status"], r["headers"], r["body_b64"] = status, h, base64.StdEncoding.EncodeToString(body)
}

func orNull[T comparable](v T) any {
	if v == *new(T) {
		return nil
	}
	return v
}

// statusDoc writes the SDK's typed /status back as the wire's document (zero times as null).
func statusDoc(s *poolswitch.PoolStatus) object {
	since := func(t time.Time) any { return orNull(math.Max(0, float64(t.UnixMicro())/1e6)) }
	keys := []any{}
	for _, k := range s.Keys {
		keys = append(keys, object{"id": k.ID, "state": k.State, "reason": orNull(k.Reason), "cooldown_source": orNull(k.CooldownSource),
			"cooldown_until": since(k.CooldownUntil), "last_used_at": since(k.LastUsedAt),
			"total_requests": k.TotalRequests, "successes": k.Successes, "errors": k.Errors,
			"failovers": k.Failovers, "estimated_remaining_quota": k.EstimatedRemainingQuota})
	}
	return object{"strategy": s.Strategy, "storage": s.Storage, "upstream_base_url": s.UpstreamBaseURL, "keys": keys,
		"provider": s.Provider, "degraded": s.Degraded, "outage": s.Outage}
}

func call(req request) (object, error) {
	opts := []poolswitch.Option{poolswitch.WithMaxRetries(0), // the proxy alone answers
		poolswitch.WithTimeout(time.Duration(req.Timeout * float64(time.Second)))}
	if req.Token != "" {
		opts = append(opts, poolswitch.WithToken(req.Token))
	}
	client := poolswitch.NewClient(req.ProxyURL, opts...)
	ctx, r, err := context.Background(), object{"status": nil, "headers": object{}, "error": nil}, error(nil)
	switch req.Call {
	case "health":
		r["json"], err = client.Health(ctx)
	case "metrics":
		r["text"], err = client.Metrics(ctx)
	case "status":
		var s *poolswitch.PoolStatus
		if s, err = client.Status(ctx); err == nil {
			r["json"] = statusDoc(s)
		}
	case "request":
		rq := &poolswitch.Request{Method: req.Method, Path: req.Path, Header: http.Header{}, JSON: req.JSON}
		for name, value := range req.Headers {
			rq.Header.Set(name, value)
		}
		if body, _ := base64.StdEncoding.DecodeString(req.BodyB64); req.JSON == nil {
			rq.Body = strings.NewReader(req.Text + string(body)) // at most one of them is set
		}
		var resp *poolswitch.Response
		if resp, err = client.Do(ctx, rq); err == nil {
			answer(r, resp.StatusCode, resp.Header, resp.Body)
		}
	case "stream":
		if len(req.Headers) > 0 {
			return nil, errors.New("the Go SDK's Stream takes no per-call headers")
		}
		started, events := time.Now(), []any{}
		var s *poolswitch.EventStream
		if s, err = client.Stream(ctx, req.Method, req.Path, req.JSON); err == nil {
			answer(r, s.StatusCode, s.Header, nil)
			for s.Next() {
				ev := s.Event()
				kind := ev.Type + map[bool]string{true: "message"}[ev.Type == ""] // the default type
				events = append(events, object{"event": kind, "data": ev.Data, "id": orNull(ev.ID),
					"at": time.Since(started).Seconds()})
			}
			err = s.Err()
			s.Close()
		}
		r["events"] = events
	default:
		return nil, errors.New("unknown call " + req.Call)
	}
	if err == nil {
		if r["status"] == nil { // an endpoint's document
			r["status"] = 200
		}
		return r, nil
	}
	var e *poolswitch.Error
	if !errors.As(err, &e) || e.Kind == poolswitch.KindDecode || e.Kind == poolswitch.KindInvalid {
		return nil, err
	}
	delete(r, "json")
	delete(r, "text")
	fail := object{"code": string(e.Kind), "status": nil, "retry_after": nil} // connection, timeout
	if e.Kind == poolswitch.KindProxy || e.Kind == poolswitch.KindUpstream {  // an answer
		answer(r, e.StatusCode, e.Header, e.Body)
		fail["code"], fail["status"] = orNull(e.Code), e.StatusCode // a Code: the proxy made it
	}
	if e.Kind == poolswitch.KindProxy {
		fail["retry_after"] = orNull(e.RetryAfter.Seconds())
	}
	r["error"] = fail
	return r, nil
}

func run(stdin io.Reader, stdout, stderr io.Writer) int {
	lines, out := bufio.NewScanner(stdin), json.NewEncoder(stdout)
	lines.Buffer(make([]byte, 64<<10), 256<<20)
	for lines.Scan() {
		var req request
		err := json.Unmarshal(lines.Bytes(), &req)
		reply := object{"id": orNull(req.ID)}
		if err == nil {
			reply["result"], err = call(req)
		}
		if err != nil {
			reply = object{"id": reply["id"], "harness_error": err.Error()}
			_, _ = io.WriteString(stderr, "go client: "+err.Error()+"\n")
		}
		_ = out.Encode(reply) // the runner is gone if stdout is
	}
	return 0
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr))
}
