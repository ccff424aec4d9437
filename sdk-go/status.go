package poolswitch

import (
	"encoding/json"
	"math"
	"time"
)

// The values of KeyStatus.State.
const (
	// KeyAvailable: the key can serve.
	KeyAvailable = "available"
	// KeyCoolingDown: the key is parked until KeyStatus.CooldownUntil.
	KeyCoolingDown = "cooling_down"
	// KeyDisabled: the key is out of the pool until re-enabled.
	KeyDisabled = "disabled"
	// KeyDraining: an operator drained the key; requests still use it, no new one will.
	KeyDraining = "draining"
	// KeyDrained: a drained key no request uses any more.
	KeyDrained = "drained"
)

// Status is the answer of GET /status: every pool with its keys' state, and every caller's
// use against its limits. Keys and callers are named by id; no key value or token is shown.
//
// Strategy, UpstreamBaseURL, Provider, Outage and Keys repeat the one pool's fields at the top
// level when the proxy has exactly one pool, for readers of PoolSwitch 0.x; Strategy is nil
// (and Keys nil) otherwise.
type Status struct {
	// Storage is where key state is kept ("memory", "sqlite", "redis").
	Storage string `json:"storage"`
	// StorageHealth says whether that store answers now (nil from a proxy before it was
	// reported).
	StorageHealth *StorageHealth `json:"storage_health,omitempty"`
	// Degraded is true while the outage guard of any pool holds requests.
	Degraded bool `json:"degraded"`
	// Pools holds one entry per pool, in the config's order.
	Pools []PoolStatus `json:"pools"`
	// Callers holds one entry per configured caller (empty without callers: in the config).
	Callers []CallerStatus `json:"callers"`
	// ConfigVersion is the config the proxy serves: the first 12 hex digits of the SHA-256 of
	// its config file ("" from a proxy older than reloads).
	ConfigVersion string `json:"config_version,omitempty"`
	// ReloadedAt is the Unix time of the proxy's last config reload; nil before any.
	ReloadedAt *float64 `json:"reloaded_at"`
	// Replicas lists every replica on the same Redis and the config it serves (redis only).
	Replicas []ReplicaStatus `json:"replicas,omitempty"`

	// Strategy is the one pool's strategy; nil unless the proxy has exactly one pool.
	Strategy *string `json:"strategy,omitempty"`
	// UpstreamBaseURL is the one pool's upstream; nil unless the proxy has exactly one pool.
	UpstreamBaseURL *string `json:"upstream_base_url,omitempty"`
	// Provider is the one pool's provider; nil unless the proxy has exactly one pool.
	Provider *string `json:"provider,omitempty"`
	// Outage is the one pool's outage (nil also when it has none).
	Outage *Outage `json:"outage,omitempty"`
	// Keys are the one pool's keys; nil unless the proxy has exactly one pool.
	Keys []KeyStatus `json:"keys,omitempty"`
}

// MarshalJSON writes the document as the proxy does: with a single pool's top-level fields,
// outage and keys included (as null and []), when Strategy is set; without them otherwise.
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status
	if s.Strategy == nil {
		return json.Marshal(plain(s))
	}
	keys := s.Keys
	if keys == nil {
		keys = []KeyStatus{}
	}
	return json.Marshal(struct {
		plain
		Outage *Outage     `json:"outage"`
		Keys   []KeyStatus `json:"keys"`
	}{plain(s), s.Outage, keys})
}

// ReplicaStatus is one replica of Status.Replicas: its id and the config version it serves.
type ReplicaStatus struct {
	// ID is "<hostname>:<pid>".
	ID string `json:"id"`
	// ConfigVersion is that replica's config version (see Status.ConfigVersion).
	ConfigVersion string `json:"config_version"`
	// SeenAt is the Unix time of its last heartbeat.
	SeenAt float64 `json:"seen_at"`
}

// PoolStatus is one pool of Status: its settings and every key's state.
type PoolStatus struct {
	// Name is the pool's name ("default" for a config without pools:).
	Name string `json:"name"`
	// Route is the path prefix that reaches the pool ("/openai"; "/" for the default pool).
	Route string `json:"route"`
	// Strategy is the key selection strategy ("round_robin", "least_used", ...).
	Strategy string `json:"strategy"`
	// UpstreamBaseURL is the API the pool forwards to.
	UpstreamBaseURL string `json:"upstream_base_url"`
	// Provider is the profile that reads upstream answers ("openai", "anthropic", ...).
	Provider string `json:"provider"`
	// Degraded is true while the pool's outage guard holds requests (most keys failing alike).
	Degraded bool `json:"degraded"`
	// Outage describes the pool's tripped outage guard; nil when it is not tripped.
	Outage *Outage `json:"outage"`
	// Keys holds one entry per key of the pool.
	Keys []KeyStatus `json:"keys"`
}

// Outage is an outage guard's state.
type Outage struct {
	// Kind is "upstream" (5xx, overload, connection errors) or "rate_limited".
	Kind string `json:"kind"`
	// Since is when the guard tripped, in Unix seconds.
	Since float64 `json:"since"`
}

// CallerStatus is one caller of Status: its limits and its current use of them.
type CallerStatus struct {
	// ID is the caller's id (never its token).
	ID string `json:"id"`
	// Pools are the pools the caller may use; nil means every pool.
	Pools []string `json:"pools"`
	// RPM is the caller's limit of requests per minute; nil means none.
	RPM *int `json:"rpm"`
	// MaxConcurrency is the caller's limit of requests in flight; nil means none.
	MaxConcurrency *int `json:"max_concurrency"`
	// RequestsLastMinute is how many requests the caller made in the last minute.
	RequestsLastMinute int `json:"requests_last_minute"`
	// InFlight is how many of the caller's requests are in flight now.
	InFlight int `json:"in_flight"`
	// Rejected counts the caller's requests refused with CodeCallerRateLimited or
	// CodeForbidden.
	Rejected int64 `json:"rejected"`
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

// keyJSON is a key of /status on the wire: times in Unix seconds, absent values null.
type keyJSON struct {
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

// UnmarshalJSON decodes a key of /status (times are Unix seconds, absent values null).
func (k *KeyStatus) UnmarshalJSON(b []byte) error {
	var raw keyJSON
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

// MarshalJSON encodes the key as /status does: times in Unix seconds, zero values as null.
func (k KeyStatus) MarshalJSON() ([]byte, error) {
	return json.Marshal(keyJSON{
		ID:                      k.ID,
		State:                   k.State,
		CooldownUntil:           unixSeconds(k.CooldownUntil),
		Reason:                  orNil(k.Reason),
		CooldownSource:          orNil(k.CooldownSource),
		TotalRequests:           k.TotalRequests,
		Successes:               k.Successes,
		Errors:                  k.Errors,
		Failovers:               k.Failovers,
		EstimatedRemainingQuota: k.EstimatedRemainingQuota,
		LastUsedAt:              unixSeconds(k.LastUsedAt),
	})
}

func unixTime(s *float64) time.Time {
	if s == nil {
		return time.Time{}
	}
	sec, frac := math.Modf(*s)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3) // to the microsecond
}

func unixSeconds(t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	s := float64(t.UnixMicro()) / 1e6
	return &s
}

func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
