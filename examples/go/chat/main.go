// Command chat sends one chat completion through a PoolSwitch proxy on 127.0.0.1:8080 and
// prints the upstream's JSON answer.
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/SlasshyOverhere/poolswitch/sdk-go"
)

func main() {
	client := poolswitch.NewClient("http://127.0.0.1:8080")
	var out map[string]any
	_ = client.PostJSON(context.Background(), "/v1/chat/completions", map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "hello"}}}, &out)
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
}
