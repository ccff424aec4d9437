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
	Client                       struct { // the SDK client's options, each optional
		MaxRetries *int     `json:"max_retries"` // absent: 0, the proxy alone answers
		Timeout    *float64 // absent: the request's timeout
		Pool       string
		Token      *string
	}
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

// options is one distinct SDK client: a client is built once per option set.
type options struct {
	url, pool, token string
	retries          int
	timeout          time.Duration
}

var clients = map[options]*poolswitch.Client{}

func clientFor(req request) *poolswitch.Client {
	o := options{url: req.ProxyURL, pool: req.Client.Pool, token: req.Token,
		timeout: time.Duration(req.Timeout * float64(time.Second))}
	if req.Client.MaxRetries != nil {
		o.retries = *req.Client.MaxRetries
	}
	if req.Client.Timeout != nil {
		o.timeout = time.Duration(*req.Client.Timeout * float64(time.Second))
	}
	if req.Client.Token != nil {
		o.token = *req.Client.Token
	}
	if clients[o] == nil {
		opts := []poolswitch.Option{poolswitch.WithMaxRetries(o.retries), poolswitch.WithTimeout(o.timeout)}
		if o.token != "" {
			opts = append(opts, poolswitch.WithToken(o.token))
		}
		if o.pool != "" {
			opts = append(opts, poolswitch.WithPool(o.pool))
		}
		clients[o] = poolswitch.NewClient(o.url, opts...)
	}
	return clients[o]
}

func call(req request) (object, error) {
	client := clientFor(req)
	ctx, r, err := context.Background(), object{"status": nil, "headers": object{}, "error": nil}, error(nil)
	rq := &poolswitch.Request{Method: req.Method, Path: req.Path, Header: http.Header{}, JSON: req.JSON}
	for name, value := range req.Headers {
		rq.Header.Set(name, value)
	}
	if body, _ := base64.StdEncoding.DecodeString(req.BodyB64); req.JSON == nil {
		rq.Body = strings.NewReader(req.Text + string(body)) // at most one of them is set
	}
	switch req.Call {
	case "health":
		r["json"], err = client.Health(ctx)
	case "metrics":
		r["text"], err = client.Metrics(ctx)
	case "status":
		r["json"], err = client.Status(ctx) // the SDK's types written back as the wire's document
	case "request":
		var resp *poolswitch.Response
		if resp, err = client.Do(ctx, rq); resp != nil {
			answer(r, resp.StatusCode, resp.Header, resp.Body) // a non-2xx answer comes with its *Error
		}
	case "stream":
		started, events := time.Now(), []any{}
		var s *poolswitch.EventStream
		if s, err = client.Stream(ctx, rq); err == nil {
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
