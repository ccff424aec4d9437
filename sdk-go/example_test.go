package poolswitch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/SlasshyOverhere/poolswitch/sdk-go"
)

// fakeProxy stands in for a PoolSwitch proxy in front of an OpenAI-style API: key "primary"
// is rate limited, so answers come from "backup" after a failover; the model "gpt-busy" finds
// every key cooling down.
func fakeProxy() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status": "ok", "keys_available": 1, "keys_total": 2}`)
	})
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = decodeJSON(r, &req)
		switch {
		case req.Model == "gpt-busy":
			// No key returns within a minute: no Retry-After, and x-should-retry: false.
			w.Header().Set("X-Poolswitch-Error", "no_available_keys")
			w.Header().Set("X-Should-Retry", "false")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error": {"type": "poolswitch_error", "code": "no_available_keys", `+
				`"message": "every key is cooling down or disabled; the first returns in 3600.0s", "retry_after": 3600}}`)
		case req.Model == "":
			w.Header().Set("X-Poolswitch-Key-Id", "backup")
			w.Header().Set("X-Poolswitch-Attempts", "1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error": {"message": "you must provide a model parameter"}}`)
		case req.Stream:
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("X-Poolswitch-Key-Id", "backup")
			w.Header().Set("X-Poolswitch-Attempts", "2")
			for _, piece := range []string{"Hello", " world"} {
				fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", piece)
				w.(http.Flusher).Flush()
			}
			_, _ = io.WriteString(w, "data: [DONE]\n\n")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Poolswitch-Key-Id", "backup")
			w.Header().Set("X-Poolswitch-Attempts", "2")
			_, _ = io.WriteString(w, `{"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "Hello!"}}]}`)
		}
	})
	return httptest.NewServer(mux)
}

func decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func ExampleNewClient() {
	proxy := fakeProxy()
	defer proxy.Close()

	client := poolswitch.NewClient(proxy.URL,
		poolswitch.WithTimeout(30*time.Second), // the whole call, retries included (default 600 s)
		poolswitch.WithMaxRetries(1),           // at most 2 attempts (default 2 retries)
		poolswitch.WithPool("openai"),          // x-poolswitch-pool on every proxied request
		poolswitch.WithHeader("X-Team", "search"),
	)
	h, err := client.Health(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Status, h.KeysAvailable, "of", h.KeysTotal, "keys available")

	// NewClient never fails: a bad base URL or option surfaces on the first call.
	_, err = poolswitch.NewClient("127.0.0.1:8080").Health(context.Background())
	fmt.Println(err)
	// Output:
	// ok 1 of 2 keys available
	// poolswitch: GET /health: invalid call: invalid client configuration: base URL: not an absolute URL; want one like http://127.0.0.1:8080
}

func ExampleClient_PostJSON() {
	proxy := fakeProxy()
	defer proxy.Close()

	client := poolswitch.NewClient(proxy.URL)
	var out struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	err := client.PostJSON(context.Background(), "/v1/chat/completions", map[string]any{
		"model":    "gpt-4o-mini",
		"messages": []map[string]string{{"role": "user", "content": "hello"}},
	}, &out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Choices[0].Message.Content)
	// Output: Hello!
}

func ExampleClient_Do() {
	proxy := fakeProxy()
	defer proxy.Close()

	client := poolswitch.NewClient(proxy.URL)
	resp, err := client.Do(context.Background(), &poolswitch.Request{
		Method: http.MethodPost,
		Path:   "/v1/chat/completions",
		JSON:   map[string]any{"model": "gpt-4o-mini", "messages": []any{}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, "from key", resp.KeyID, "after", resp.Attempts, "attempts")

	// A non-2xx answer returns the *Error and the Response, which can still be read.
	resp, err = client.Do(context.Background(), &poolswitch.Request{
		Method: http.MethodPost,
		Path:   "/v1/chat/completions",
		JSON:   map[string]any{},
		Pool:   "openai", // this request only
	})
	var perr *poolswitch.Error
	if errors.As(err, &perr) && perr.Kind == poolswitch.KindUpstream {
		fmt.Println(perr.StatusCode, resp.StatusCode, string(resp.Body))
	}
	// Output:
	// 200 from key backup after 2 attempts
	// 400 400 {"error": {"message": "you must provide a model parameter"}}
}

func ExampleClient_Stream() {
	proxy := fakeProxy()
	defer proxy.Close()

	client := poolswitch.NewClient(proxy.URL)
	stream, err := client.Stream(context.Background(), &poolswitch.Request{
		Method: http.MethodPost,
		Path:   "/v1/chat/completions",
		Header: http.Header{"X-Trace-Id": {"t-1"}},
		JSON: map[string]any{
			"model":    "gpt-4o-mini",
			"stream":   true,
			"messages": []map[string]string{{"role": "user", "content": "hello"}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for stream.Next() {
		fmt.Println(stream.Event().Data)
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {"choices":[{"delta":{"content":"Hello"}}]}
	// {"choices":[{"delta":{"content":" world"}}]}
	// [DONE]
}

func ExampleError() {
	proxy := fakeProxy()
	defer proxy.Close()

	client := poolswitch.NewClient(proxy.URL)
	ctx := context.Background()

	// Every key is cooling down for an hour: the proxy answers 429 no_available_keys with
	// x-should-retry: false, and the call returns at once, without a retry.
	err := client.PostJSON(ctx, "/v1/chat/completions", map[string]any{"model": "gpt-busy"}, nil)
	var perr *poolswitch.Error
	if errors.As(err, &perr) && perr.Kind == poolswitch.KindProxy {
		switch perr.Code {
		case poolswitch.CodeNoAvailableKeys, poolswitch.CodeCallerRateLimited:
			fmt.Println(perr.Code, "; retry in", perr.RetryAfter)
		case poolswitch.CodeNoSuchPool:
			fmt.Println("no such pool: check WithPool or the path")
		default:
			fmt.Println("proxy error", perr.Code)
		}
	}

	// The upstream refused the request: its status and body are relayed as they were.
	err = client.PostJSON(ctx, "/v1/chat/completions", map[string]any{}, nil)
	if errors.As(err, &perr) && perr.Kind == poolswitch.KindUpstream {
		fmt.Println(perr.StatusCode, perr.Message, "(key "+perr.KeyID+")")
		fmt.Println(poolswitch.IsProxyError(err))
	}
	// Output:
	// no_available_keys ; retry in 1h0m0s
	// 400 you must provide a model parameter (key backup)
	// false
}
