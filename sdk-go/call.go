package poolswitch

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// call is the time frame of one call: the caller's context, the client's timeout, and the
// deadline that retries must fit in.
type call struct {
	parent   context.Context
	ctx      context.Context // parent, also cancelled by the timeout and by done
	cancel   context.CancelFunc
	timer    *time.Timer // the whole call's timeout, then a stream's silence timeout
	timeout  time.Duration
	timedOut atomic.Bool
	silence  bool      // the timer bounds the silence between a stream's chunks
	deadline time.Time // zero when neither the context nor the client sets one
	wait     func(ctx context.Context, d time.Duration) bool
}

func (c *Client) newCall(parent context.Context) *call {
	ctx, cancel := context.WithCancel(parent)
	cl := &call{parent: parent, ctx: ctx, cancel: cancel, timeout: c.timeout, wait: c.wait}
	if d, ok := parent.Deadline(); ok {
		cl.deadline = d
	}
	if c.timeout > 0 {
		if end := time.Now().Add(c.timeout); cl.deadline.IsZero() || end.Before(cl.deadline) {
			cl.deadline = end
		}
		cl.timer = time.AfterFunc(c.timeout, cl.expire)
	}
	return cl
}

func (cl *call) expire() {
	cl.timedOut.Store(true)
	cl.cancel()
}

// ended returns what the caller sees when the call's time is up: ctx.Err() when the caller's
// context ended, a KindTimeout *Error when the client's timeout passed; nil while neither.
func (cl *call) ended(method, path string) error {
	if err := cl.parent.Err(); err != nil {
		return err
	}
	if cl.timedOut.Load() {
		msg := fmt.Sprintf("no complete answer within %v (WithTimeout)", cl.timeout)
		if cl.silence {
			msg = fmt.Sprintf("the stream was silent for %v (WithTimeout)", cl.timeout)
		}
		return &Error{Kind: KindTimeout, Method: method, Path: path, Message: msg, Err: context.DeadlineExceeded}
	}
	return nil
}

// interrupted is ended's answer for a call known to be over.
func (cl *call) interrupted(method, path string) error {
	if err := cl.ended(method, path); err != nil {
		return err
	}
	return &Error{Kind: KindTimeout, Method: method, Path: path, Err: context.DeadlineExceeded}
}

// streaming turns the timeout of the whole call into a timeout of the silence between a
// stream's chunks, read from body; false when the call's time was already up.
func (cl *call) streaming(body io.ReadCloser) (io.ReadCloser, bool) {
	if cl.timer == nil {
		return body, true
	}
	if !cl.timer.Stop() {
		return body, false
	}
	cl.silence = true
	cl.timer = time.AfterFunc(cl.timeout, cl.expire)
	return &lively{ReadCloser: body, cl: cl}, true
}

// lively restarts the silence timeout on every chunk it reads.
type lively struct {
	io.ReadCloser
	cl *call
}

func (l *lively) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	if n > 0 && !l.cl.timedOut.Load() {
		l.cl.timer.Reset(l.cl.timeout)
	}
	return n, err
}

// done releases the call's resources.
func (cl *call) done() {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	cl.cancel()
}

// fits reports whether waiting d still ends before the call's deadline; always without one.
func (cl *call) fits(d time.Duration) bool {
	return cl.deadline.IsZero() || time.Now().Add(d).Before(cl.deadline)
}

// sleep waits d; false when the call's context ended first.
func (cl *call) sleep(d time.Duration) bool {
	return cl.wait(cl.ctx, d)
}

// sleep waits d; false when ctx ended first. It is the Client's default wait.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
