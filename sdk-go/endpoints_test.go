package poolswitch

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Health
	}{
		{"ok", `{"status": "ok", "keys_available": 2, "keys_total": 2}`, Health{HealthOK, 2, 2}},
		{"degraded", `{"status": "degraded", "keys_available": 0, "keys_total": 2}`, Health{HealthDegraded, 0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, tt.body, "Content-Type", "application/json"))
			h, err := NewClient(srv.URL).Health(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if *h != tt.want {
				t.Errorf("Health = %+v, want %+v", *h, tt.want)
			}
			if r := srv.requests()[0]; r.Method != "GET" || r.RequestURI != "/health" {
				t.Errorf("sent %s %s", r.Method, r.RequestURI)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	const body = `{"strategy": "round_robin", "storage": "memory", "upstream_base_url": "https://api.openai.com",
	  "provider": "openai", "degraded": true, "outage": {"kind": "upstream", "since": 1795491700.5},
	  "keys": [
	    {"id": "primary", "state": "cooling_down", "cooldown_until": 1795495359.25, "reason": "rate_limited",
	     "cooldown_source": "retry-after",
	     "total_requests": 120, "successes": 118, "errors": 2, "failovers": 2,
	     "estimated_remaining_quota": 17, "last_used_at": 1795491759.5},
	    {"id": "backup", "state": "available", "cooldown_until": null, "reason": null,
	     "total_requests": 0, "successes": 0, "errors": 0, "failovers": 0,
	     "estimated_remaining_quota": null, "last_used_at": null}
	  ]}`
	srv := newRecorder(t, answer(200, body))
	got, err := NewClient(srv.URL).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	quota := int64(17)
	want := &PoolStatus{
		Strategy: "round_robin", Storage: "memory", UpstreamBaseURL: "https://api.openai.com",
		Provider: "openai", Degraded: true, Outage: &Outage{Kind: "upstream", Since: 1795491700.5},
		Keys: []KeyStatus{
			{
				ID: "primary", State: KeyCoolingDown, CooldownUntil: time.Unix(1795495359, 250000000),
				Reason: "rate_limited", CooldownSource: "retry-after", TotalRequests: 120, Successes: 118, Errors: 2, Failovers: 2,
				EstimatedRemainingQuota: &quota, LastUsedAt: time.Unix(1795491759, 500000000),
			},
			{ID: "backup", State: KeyAvailable},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Status =\n%+v\nwant\n%+v", got, want)
	}
}

func TestStatusNotJSON(t *testing.T) {
	srv := newRecorder(t, answer(200, `{"keys": "nope"}`))
	_, err := NewClient(srv.URL).Status(context.Background())
	asError(t, err, KindDecode)
}

func TestMetrics(t *testing.T) {
	const text = "# TYPE poolswitch_keys gauge\npoolswitch_keys 2.0\n"
	srv := newRecorder(t, answer(200, text, "Content-Type", "text/plain; version=0.0.4"))
	got, err := NewClient(srv.URL).Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != text {
		t.Errorf("Metrics = %q", got)
	}
	if a := srv.requests()[0].Header.Get("Accept"); !strings.HasPrefix(a, "text/plain") {
		t.Errorf("Accept = %q", a)
	}
}
