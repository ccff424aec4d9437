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
		{"ok", `{"status": "ok", "keys_available": 2, "keys_total": 2,
		  "pools": [{"name": "default", "status": "ok", "keys_available": 2, "keys_total": 2}],
		  "storage": {"backend": "redis", "status": "ok", "reason": null, "since": null, "outages": 0}}`,
			Health{HealthOK, 2, 2, []PoolHealth{{"default", HealthOK, 2, 2}},
				&HealthStorage{"redis", StorageHealth{HealthOK, nil, nil, 0}}}},
		{"degraded", `{"status": "degraded", "keys_available": 1, "keys_total": 3,
		  "pools": [{"name": "openai", "status": "degraded", "keys_available": 0, "keys_total": 1},
		            {"name": "gemini", "status": "ok", "keys_available": 1, "keys_total": 2}]}`,
			Health{HealthDegraded, 1, 3, []PoolHealth{{"openai", HealthDegraded, 0, 1}, {"gemini", HealthOK, 1, 2}}, nil}},
		{"a proxy before pools", `{"status": "ok", "keys_available": 2, "keys_total": 2}`, Health{HealthOK, 2, 2, nil, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, answer(200, tt.body, "Content-Type", "application/json"))
			h, err := NewClient(srv.URL, WithPool("openai")).Health(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*h, tt.want) {
				t.Errorf("Health = %+v, want %+v", *h, tt.want)
			}
			r := srv.requests()[0]
			if r.Method != "GET" || r.RequestURI != "/health" {
				t.Errorf("sent %s %s", r.Method, r.RequestURI)
			}
			if p := r.Header.Get("X-Poolswitch-Pool"); p != "" {
				t.Errorf("x-poolswitch-pool = %q on /health, want none", p)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	const body = `{"storage": "memory", "degraded": true,
	  "pools": [{"name": "default", "route": "/", "strategy": "round_robin",
	    "upstream_base_url": "https://api.openai.com", "provider": "openai", "degraded": true,
	    "outage": {"kind": "upstream", "since": 1795491700.5},
	    "keys": [
	      {"id": "primary", "state": "cooling_down", "cooldown_until": 1795495359.25, "reason": "rate_limited",
	       "cooldown_source": "retry-after",
	       "total_requests": 120, "successes": 118, "errors": 2, "failovers": 2,
	       "estimated_remaining_quota": 17, "last_used_at": 1795491759.5},
	      {"id": "backup", "state": "available", "cooldown_until": null, "reason": null,
	       "total_requests": 0, "successes": 0, "errors": 0, "failovers": 0,
	       "estimated_remaining_quota": null, "last_used_at": null}
	    ]}],
	  "callers": [{"id": "web", "pools": null, "rpm": null, "max_concurrency": 4,
	    "requests_last_minute": 3, "in_flight": 1, "rejected": 2}],
	  "strategy": "round_robin", "upstream_base_url": "https://api.openai.com", "provider": "openai",
	  "outage": {"kind": "upstream", "since": 1795491700.5}, "keys": []}`
	srv := newRecorder(t, answer(200, body))
	got, err := NewClient(srv.URL, WithPool("default")).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p := srv.requests()[0].Header.Get("X-Poolswitch-Pool"); p != "" {
		t.Errorf("x-poolswitch-pool = %q on /status, want none", p)
	}
	quota, four := int64(17), 4
	str := func(s string) *string { return &s }
	outage := &Outage{Kind: "upstream", Since: 1795491700.5}
	want := &Status{
		Storage: "memory", Degraded: true,
		Pools: []PoolStatus{{
			Name: "default", Route: "/", Strategy: "round_robin", UpstreamBaseURL: "https://api.openai.com",
			Provider: "openai", Degraded: true, Outage: outage,
			Keys: []KeyStatus{
				{
					ID: "primary", State: KeyCoolingDown, CooldownUntil: time.Unix(1795495359, 250000000),
					Reason: "rate_limited", CooldownSource: "retry-after", TotalRequests: 120, Successes: 118, Errors: 2, Failovers: 2,
					EstimatedRemainingQuota: &quota, LastUsedAt: time.Unix(1795491759, 500000000),
				},
				{ID: "backup", State: KeyAvailable},
			},
		}},
		Callers:  []CallerStatus{{ID: "web", MaxConcurrency: &four, RequestsLastMinute: 3, InFlight: 1, Rejected: 2}},
		Strategy: str("round_robin"), UpstreamBaseURL: str("https://api.openai.com"), Provider: str("openai"),
		Outage: outage, Keys: []KeyStatus{},
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
