package poolswitch

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// call is the time frame of one call: the caller's context, the client's timeout, and the
// deadline that retries must fit in.
type call struct {
	parent   context.Context
	ctx      context.Context // parent, also cancelled by the timeout and by done
	cancel   context.CancelFunc
	timer    *time.Timer
	timeout  time.Duration
	timedOut atomic.Bool
	deadline time.Time // zero when neither the context nor the client sets one
}

func (c *Client) newCall(parent context.Context) *call {
	ctx, cancel := context.WithCancel(parent)
	cl := &call{parent: parent, ctx: ctx, cancel: cancel, timeout: c.timeout}
	if d, ok := parent.Deadline(); ok {
		cl.deadline = d
	}
	if c.timeout > 0 {
		if end := time.Now().Add(c.timeout); cl.deadline.IsZero() || end.Before(cl.deadline) {
			cl.deadline = end
		}
		cl.timer = time.AfterFunc(c.timeout, func() {
			cl.timedOut.Store(true)
			cancel()
		})
	}
	return cl
}

// ended returns what the caller sees when the call's time is up: ctx.Err() when the caller's
// context ended, a KindTimeout *Error when the client's timeout passed; nil while neither.
func (cl *call) ended(method, path string) error {
	if err := cl.parent.Err(); err != nil {
		return err
	}
	if cl.timedOut.Load() {
		return &Error{
			Kind:    KindTimeout,
			Method:  method,
			Path:    path,
			Message: fmt.Sprintf("no complete answer within %v (WithTimeout)", cl.timeout),
			Err:     context.DeadlineExceeded,
		}
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

// stopTimer ends the client's timeout for the rest of the call; false when it already fired.
func (cl *call) stopTimer() bool {
	return cl.timer == nil || cl.timer.Stop()
}

// done releases the call's resources.
func (cl *call) done() {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	cl.cancel()
}

// fits reports whether waiting d still ends before the call's deadline; never without one.
func (cl *call) fits(d time.Duration) bool {
	return !cl.deadline.IsZero() && time.Now().Add(d).Before(cl.deadline)
}

// sleep waits d; false when the call's context ended first.
func (cl *call) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cl.ctx.Done():
		return false
	}
}
