package poolswitch

// Helpers that run the real proxy (server/, `python -m poolswitch start`) in front of the
// shared fake upstream (conformance/fake_upstream.py), one pair per test.
//
// POOLSWITCH_PYTHON names the interpreter that has the server installed (default python3).
// The tests skip only outside the monorepo (no ../server or ../conformance/fake_upstream.py),
// and never when POOLSWITCH_REQUIRE_PROXY=1 (as in `nox -s sdk_go`): there they fail instead.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	fakeScript   = "../conformance/fake_upstream.py"
	serverDir    = "../server"
	startTimeout = 20 * time.Second
	stopTimeout  = 5 * time.Second
)

// pythonForProxy returns the interpreter to run the proxy with, or skips the test outside the
// monorepo.
func pythonForProxy(t *testing.T) string {
	t.Helper()
	for _, p := range []string{serverDir, fakeScript} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("POOLSWITCH_REQUIRE_PROXY") == "1" {
				t.Fatalf("POOLSWITCH_REQUIRE_PROXY=1 but %s is missing: %v", p, err)
			}
			t.Skipf("outside the monorepo (%s is missing): no real proxy to test against", p)
		}
	}
	if py := os.Getenv("POOLSWITCH_PYTHON"); py != "" {
		return py
	}
	return "python3"
}

// syncBuffer collects a child's output for the failure log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is a started process, stopped (SIGTERM, then SIGKILL) at the test's cleanup.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	output *syncBuffer
}

func startChild(t *testing.T, name string, cmd *exec.Cmd) *child {
	t.Helper()
	// A POOLSWITCH_<SETTING> variable of the caller's shell would override the test's config.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POOLSWITCH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	c := &child{cmd: cmd, exited: make(chan struct{}), output: &syncBuffer{}}
	if cmd.Stdout == nil {
		cmd.Stdout = c.output
	}
	cmd.Stderr = c.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, cmd.Path, err)
	}
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.output.String())
		}
	})
	return c
}

// fakeUpstream is conformance/fake_upstream.py in a child process, scripted over HTTP.
type fakeUpstream struct {
	URL string
}

// attempt is one request the fake upstream received (GET /__fake/attempts).
type attempt struct {
	KeyID      *string    `json:"key_id"`
	Method     string     `json:"method"`
	Path       string     `json:"path"`
	Headers    [][]string `json:"headers"`
	BodyLength int        `json:"body_length"`
}

func startFake(t *testing.T, python string, keys map[string]string) *fakeUpstream {
	t.Helper()
	keysJSON, _ := json.Marshal(keys)
	cmd := exec.Command(python, fakeScript, "--keys", string(keysJSON), "--port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, "fake upstream", cmd)
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		var out struct{ URL string }
		if !ok || json.Unmarshal([]byte(l), &out) != nil || out.URL == "" {
			t.Fatalf("fake upstream printed %q, not its URL; output:\n%s", l, c.output.String())
		}
		return &fakeUpstream{URL: out.URL}
	case <-time.After(startTimeout):
		t.Fatalf("fake upstream did not start in %v; output:\n%s", startTimeout, c.output.String())
	}
	return nil
}

func (f *fakeUpstream) control(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	var payload bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&payload).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, f.URL+path, &payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("fake upstream %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		t.Fatalf("fake upstream %s %s: %d %s", method, path, resp.StatusCode, msg.String())
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// script sets what each key's requests get, in order (the last behaviour repeats).
func (f *fakeUpstream) script(t *testing.T, scripts map[string][]map[string]any) {
	t.Helper()
	f.control(t, http.MethodPut, "/__fake/script", scripts, nil)
}

// reset forgets the attempts and the scripts.
func (f *fakeUpstream) reset(t *testing.T) {
	t.Helper()
	f.control(t, http.MethodPost, "/__fake/reset", nil, nil)
}

func (f *fakeUpstream) attempts(t *testing.T) []attempt {
	t.Helper()
	var out []attempt
	f.control(t, http.MethodGet, "/__fake/attempts", nil, &out)
	return out
}

// keyIDs lists the keys the upstream saw, in order ("-" for none).
func (f *fakeUpstream) keyIDs(t *testing.T) string {
	t.Helper()
	var ids []string
	for _, a := range f.attempts(t) {
		id := "-"
		if a.KeyID != nil {
			id = *a.KeyID
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ",")
}

// realProxy is a fake upstream and a proxy in front of it.
type realProxy struct {
	Fake *fakeUpstream
	URL  string
}

var testKeys = map[string]string{"sk-test-a": "a", "sk-test-b": "b"}

// startProxy starts a fake upstream knowing keys a and b, and a proxy with the given keys
// ("a", "b") and extra YAML settings.
func startProxy(t *testing.T, keyIDs []string, settings string) *realProxy {
	t.Helper()
	python := pythonForProxy(t)
	fake := startFake(t, python, testKeys)
	var config strings.Builder
	fmt.Fprintf(&config, "upstream_base_url: %s\n%s\nkeys:\n", fake.URL, settings)
	for _, id := range keyIDs {
		fmt.Fprintf(&config, "  - {id: %s, value: sk-test-%s}\n", id, id)
	}
	path := filepath.Join(t.TempDir(), "poolswitch.yaml")
	if err := os.WriteFile(path, []byte(config.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastOutput string
	for try := 0; try < 3; try++ { // another process may take the free port first
		port := freePort(t)
		cmd := exec.Command(python, "-m", "poolswitch", "start", "--config", path,
			"--port", fmt.Sprint(port), "--log-level", "warning")
		c := startChild(t, "proxy", cmd)
		url := fmt.Sprintf("http://127.0.0.1:%d", port)
		if waitHealthy(url, c.exited) {
			return &realProxy{Fake: fake, URL: url}
		}
		lastOutput = c.output.String()
		select {
		case <-c.exited: // exited early (port taken?): try another port
		default:
			t.Fatalf("proxy did not answer /health within %v; output:\n%s", startTimeout, lastOutput)
		}
	}
	t.Fatalf("proxy did not start; output:\n%s", lastOutput)
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHealthy polls GET /health until 200, the process exits, or startTimeout passes.
func waitHealthy(url string, exited <-chan struct{}) bool {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
