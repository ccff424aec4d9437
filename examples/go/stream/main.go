// Command stream streams a chat completion through a PoolSwitch proxy and prints the text as
// it arrives. The proxy's URL comes from POOLSWITCH_URL (default http://127.0.0.1:8080).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/SlasshyOverhere/poolswitch/sdk-go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	url := os.Getenv("POOLSWITCH_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	client := poolswitch.NewClient(url, poolswitch.WithTimeout(30*time.Second))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	stream, err := client.Stream(ctx, &poolswitch.Request{
		Method: "POST",
		Path:   "/v1/chat/completions",
		JSON: map[string]any{
			"model":    "gpt-4o-mini",
			"stream":   true,
			"messages": []map[string]string{{"role": "user", "content": "Say hello in five words."}},
		},
	})
	var perr *poolswitch.Error
	if errors.As(err, &perr) && perr.Code == poolswitch.CodeNoAvailableKeys {
		return fmt.Errorf("every key is cooling down; try again in %v", perr.RetryAfter)
	}
	if err != nil {
		return err
	}
	defer stream.Close()
	fmt.Fprintf(os.Stderr, "streaming from key %s (%d attempt(s))\n", stream.KeyID, stream.Attempts)

	for stream.Next() {
		data := stream.Event().Data
		if data == "[DONE]" {
			break
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return fmt.Errorf("unexpected event %q: %w", data, err)
		}
		for _, choice := range chunk.Choices {
			fmt.Print(choice.Delta.Content)
		}
	}
	fmt.Println()
	return stream.Err()
}
