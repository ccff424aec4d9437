package poolswitch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"testing"
)

// statusExample is the server's /status document, committed for the SDKs' types.
const statusExample = "../docs/status.example.json"

// TestStatusTypesCarryEveryField checks Status against the server's example document: every
// key of the file is a field of the types (decoding refuses unknown fields), and no field is
// lost or silently zero (the types encode back to the same document, key for key, value for
// value).
func TestStatusTypesCarryEveryField(t *testing.T) {
	doc, err := os.ReadFile(statusExample)
	if err != nil {
		t.Fatal(err)
	}
	var s Status
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s does not decode into Status: %v", statusExample, err)
	}
	again, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &got); err != nil {
		t.Fatal(err)
	}
	for _, d := range diff("", want, got) {
		t.Error(d)
	}
	if len(s.Pools) == 0 || len(s.Pools[0].Keys) == 0 || len(s.Callers) == 0 {
		t.Fatalf("the example lost its pools, keys or callers: %+v", s)
	}
}

// TestStatusWithoutSinglePoolFields checks that a document of several pools, without the
// top-level compatibility fields, encodes back without them.
func TestStatusWithoutSinglePoolFields(t *testing.T) {
	const doc = `{"storage":"memory","degraded":false,"pools":[],"callers":[],` +
		`"config_version":"3f9a1c02be7d","reloaded_at":null}`
	var s Status
	if err := json.Unmarshal([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	if s.Strategy != nil || s.Keys != nil || s.Outage != nil {
		t.Errorf("single-pool fields set: %+v", s)
	}
	if b, err := json.Marshal(s); err != nil || string(b) != doc {
		t.Errorf("encoded as %s (%v), want %s", b, err, doc)
	}
}

// diff lists where got differs from want (documents decoded into any): a missing or extra key,
// another type, another value (numbers within 1e-3).
func diff(at string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", at, got)}
		}
		var out []string
		for _, k := range keysOf(w, g) {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				out = append(out, fmt.Sprintf("%s.%s: in the file, lost by the types", at, k))
			case !inW:
				out = append(out, fmt.Sprintf("%s.%s: written by the types, not in the file", at, k))
			default:
				out = append(out, diff(at+"."+k, wv, gv)...)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d elements, got %v", at, len(w), got)}
		}
		var out []string
		for i := range w {
			out = append(out, diff(fmt.Sprintf("%s[%d]", at, i), w[i], g[i])...)
		}
		return out
	case float64:
		if g, ok := got.(float64); !ok || math.Abs(g-w) > 1e-3 {
			return []string{fmt.Sprintf("%s: want %v, got %v", at, w, got)}
		}
		return nil
	default:
		if !reflect.DeepEqual(want, got) {
			return []string{fmt.Sprintf("%s: want %v, got %v", at, want, got)}
		}
		return nil
	}
}

func keysOf(a, b map[string]any) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}
