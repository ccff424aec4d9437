package poolswitch

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"
)

// The values of Health.Status.
const (
	// HealthOK: at least one key can serve now.
	HealthOK = "ok"
	// HealthDegraded: the proxy runs, but no key can serve right now.
	HealthDegraded = "degraded"
)

// The values of KeyStatus.State.
const (
	// KeyAvailable: the key can serve.
	KeyAvailable = "available"
	// KeyCoolingDown: the key is parked until KeyStatus.CooldownUntil.
	KeyCoolingDown = "cooling_down"
	// KeyDisabled: the key is out of the pool until re-enabled.
	KeyDisabled = "disabled"
)

// Health is the answer of GET /health. The proxy answers it without calling the upstream.
type Health struct {
	// Status is HealthOK or HealthDegraded.
	Status string `json:"status"`
	// KeysAvailable is the number of keys that can serve now.
	KeysAvailable int `json:"keys_available"`
	// KeysTotal is the number of keys in the pool.
	KeysTotal int `json:"keys_total"`
}

// PoolStatus is the answer of GET /status: the proxy's settings and every key's state. Keys
// are named by id; their values are never shown.
type PoolStatus struct {
	// Strategy is the key selection strategy ("round_robin", "least_used", ...).
	Strategy string `json:"strategy"`
	// Storage is where key state is kept ("memory", "sqlite").
	Storage string `json:"storage"`
	// UpstreamBaseURL is the API the proxy forwards to.
	UpstreamBaseURL string `json:"upstream_base_url"`
	// Provider is the profile that reads upstream answers ("openai", "anthropic", ...).
	Provider string `json:"provider"`
	// Degraded is true while the outage guard holds requests (most keys failing alike).
	Degraded bool `json:"degraded"`
	// Outage describes the tripped outage guard; nil when it is not tripped.
	Outage *Outage `json:"outage"`
	// Keys holds one entry per key of the pool.
	Keys []KeyStatus `json:"keys"`
}

// Outage is the outage guard's state in PoolStatus.
type Outage struct {
	// Kind is "upstream" (5xx, overload, connection errors) or "rate_limited".
	Kind string `json:"kind"`
	// Since is when the guard tripped, in Unix seconds.
	Since float64 `json:"since"`
}

// KeyStatus is the state of one key in PoolStatus.
type KeyStatus struct {
	// ID is the key's id.
	ID string
	// State is KeyAvailable, KeyCoolingDown or KeyDisabled.
	State string
	// CooldownUntil is when a cooling key returns; zero otherwise.
	CooldownUntil time.Time
	// Reason is the outcome that parked the key ("rate_limited", "quota_exhausted",
	// "key_invalid"); "" when the key is available.
	Reason string
	// CooldownSource is the signal the cooldown came from ("retry-after", "retryDelay",
	// "default", "on_status[0]", ...); "" when the key is available.
	CooldownSource string
	// TotalRequests, Successes, Errors and Failovers count the key's attempts.
	TotalRequests, Successes, Errors, Failovers int64
	// EstimatedRemainingQuota is the remaining request quota the upstream last reported for
	// the key; nil when unknown.
	EstimatedRemainingQuota *int64
	// LastUsedAt is the time of the key's last attempt; zero when never used.
	LastUsedAt time.Time
}

// UnmarshalJSON decodes a key of /status (times are Unix seconds, absent values null).
func (k *KeyStatus) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID                      string   `json:"id"`
		State                   string   `json:"state"`
		CooldownUntil           *float64 `json:"cooldown_until"`
		Reason                  *string  `json:"reason"`
		CooldownSource          *string  `json:"cooldown_source"`
		TotalRequests           int64    `json:"total_requests"`
		Successes               int64    `json:"successes"`
		Errors                  int64    `json:"errors"`
		Failovers               int64    `json:"failovers"`
		EstimatedRemainingQuota *int64   `json:"estimated_remaining_quota"`
		LastUsedAt              *float64 `json:"last_used_at"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*k = KeyStatus{
		ID:                      raw.ID,
		State:                   raw.State,
		CooldownUntil:           unixTime(raw.CooldownUntil),
		TotalRequests:           raw.TotalRequests,
		Successes:               raw.Successes,
		Errors:                  raw.Errors,
		Failovers:               raw.Failovers,
		EstimatedRemainingQuota: raw.EstimatedRemainingQuota,
		LastUsedAt:              unixTime(raw.LastUsedAt),
	}
	if raw.Reason != nil {
		k.Reason = *raw.Reason
	}
	if raw.CooldownSource != nil {
		k.CooldownSource = *raw.CooldownSource
	}
	return nil
}

func unixTime(s *float64) time.Time {
	if s == nil {
		return time.Time{}
	}
	sec, frac := math.Modf(*s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// Health calls GET /health.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.GetJSON(ctx, "/health", &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Status calls GET /status.
func (c *Client) Status(ctx context.Context) (*PoolStatus, error) {
	var s PoolStatus
	if err := c.GetJSON(ctx, "/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Metrics calls GET /metrics and returns the Prometheus text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, &Request{Method: http.MethodGet, Path: "/metrics"}, "text/plain")
	if err != nil {
		return "", err
	}
	return string(resp.Body), nil
}
