// Command call makes one chat completion through the official openai-go SDK, with its default
// retry settings, against PoolSwitch, and prints one JSON line:
// {"sdk", "version", "outcome": "success" | <error kind>, "status", "elapsed"}.
// Usage: call <proxy url>. A 30 s request timeout is the only non-default option.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: call <proxy url>")
		os.Exit(2)
	}
	// any value without callers (the proxy replaces it with a pool key); a caller token with them
	apiKey := os.Getenv("OFFICIAL_API_KEY")
	if apiKey == "" {
		apiKey = "sk-caller-placeholder"
	}
	client := openai.NewClient(
		option.WithBaseURL(os.Args[1]+"/v1/"),
		option.WithAPIKey(apiKey),
		option.WithRequestTimeout(30*time.Second),
	)
	started := time.Now()
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    openai.ChatModelGPT4oMini,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	elapsed := time.Since(started).Seconds()
	outcome, status := "success", 200
	var apiErr *openai.Error
	switch {
	case errors.As(err, &apiErr):
		outcome, status = fmt.Sprintf("*openai.Error(%d)", apiErr.StatusCode), apiErr.StatusCode
	case err != nil:
		outcome, status = fmt.Sprintf("%T", err), 0
	}
	line, _ := json.Marshal(map[string]any{
		"sdk": "openai-go", "version": version(), "outcome": outcome, "status": status,
		"elapsed": elapsed,
	})
	fmt.Println(string(line))
}

// version is the openai-go module's version, as built in.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/openai/openai-go/v3" {
				return dep.Version
			}
		}
	}
	return "unknown"
}
