package poolswitch

import (
	"context"
	"net/http"
)

// The values of Health.Status.
const (
	// HealthOK: at least one key can serve now.
	HealthOK = "ok"
	// HealthDegraded: the proxy runs, but no key can serve right now.
	HealthDegraded = "degraded"
)

// Health is the answer of GET /health. The proxy answers it without calling the upstream.
type Health struct {
	// Status is HealthOK or HealthDegraded.
	Status string `json:"status"`
	// KeysAvailable is the number of keys, over every pool, that can serve now.
	KeysAvailable int `json:"keys_available"`
	// KeysTotal is the number of keys over every pool.
	KeysTotal int `json:"keys_total"`
	// Pools has one entry per pool, in the config's order (nil from a proxy before pools).
	Pools []PoolHealth `json:"pools"`
	// Storage is the key-state store's health (nil from a proxy before it was reported).
	Storage *HealthStorage `json:"storage,omitempty"`
}

// StorageHealth says whether the key-state store answers; a proxy whose Redis is away serves
// on its local state and reports HealthDegraded.
type StorageHealth struct {
	// Status is HealthOK or HealthDegraded, for the store.
	Status string `json:"status"`
	// Reason says why the store cannot be used (one line, no secrets); nil when it can.
	Reason *string `json:"reason"`
	// Since is when the store became unusable (unix seconds); nil when it is usable.
	Since *float64 `json:"since"`
	// Outages counts the times the store became unusable since the proxy started.
	Outages int `json:"outages"`
}

// HealthStorage is the store's part of Health: StorageHealth and the backend's name.
type HealthStorage struct {
	// Backend is "memory", "sqlite" or "redis".
	Backend string `json:"backend"`
	StorageHealth
}

// PoolHealth is one pool's part of Health.
type PoolHealth struct {
	// Name is the pool's name.
	Name string `json:"name"`
	// Status is HealthOK or HealthDegraded, for this pool.
	Status string `json:"status"`
	// KeysAvailable is the number of the pool's keys that can serve now.
	KeysAvailable int `json:"keys_available"`
	// KeysTotal is the number of the pool's keys.
	KeysTotal int `json:"keys_total"`
}

// Health calls GET /health (without WithPool's header: the document covers every pool).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.endpoint(ctx, "/health", &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Status calls GET /status (without WithPool's header: the document covers every pool).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.endpoint(ctx, "/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Metrics calls GET /metrics and returns the Prometheus text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, &Request{Method: http.MethodGet, Path: "/metrics", endpoint: true}, "text/plain")
	if err != nil {
		return "", err
	}
	return string(resp.Body), nil
}

// endpoint reads one of the proxy's own JSON documents into out.
func (c *Client) endpoint(ctx context.Context, path string, out any) error {
	resp, err := c.do(ctx, &Request{Method: http.MethodGet, Path: path, endpoint: true}, "application/json")
	if err != nil {
		return err
	}
	return resp.Decode(out)
}
