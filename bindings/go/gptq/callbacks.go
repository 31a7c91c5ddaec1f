package gptq

import (
	"runtime/cgo"
	"runtime/debug"
	"sync"
)

// callbacks holds a Context's Go callbacks and the cgo.Handles through which
// the library reaches them. It must not refer to the Context: the handles
// keep it reachable from a global table until Close, and a reference back
// would keep an unclosed Context from ever being finalized.
type callbacks struct {
	progress func(done, total int64) bool
	log      func(level LogLevel, message string)
	handles  []cgo.Handle

	mu       sync.Mutex // guards panicked (callbacks may run on any thread)
	panicked *CallbackPanic
}

// install registers cfg's callbacks in c. It returns nil if there are none.
func installCallbacks(cfg *Config, c *c_gptq_config) *callbacks {
	if cfg == nil || (cfg.Progress == nil && cfg.Log == nil) {
		return nil
	}
	cb := &callbacks{progress: cfg.Progress, log: cfg.Log}
	if cb.progress != nil {
		fn, userData, h := c_gptq_progress_fn_new(cb.onProgress)
		c.progress, c.progress_user_data = fn, userData
		cb.handles = append(cb.handles, h)
	}
	if cb.log != nil {
		fn, userData, h := c_gptq_log_fn_new(cb.onLog)
		c.log, c.log_user_data = fn, userData
		cb.handles = append(cb.handles, h)
	}
	return cb
}

// release deletes the handles; call it only once the library can no longer
// call back (after gptq_ctx_destroy).
func (cb *callbacks) release() {
	if cb == nil {
		return
	}
	for _, h := range cb.handles {
		h.Delete()
	}
	cb.handles = nil
}

// onProgress is what the generated trampoline calls. 0 continues, 1 cancels.
func (cb *callbacks) onProgress(done, total int64) (ret int32) {
	if cb.hasPanicked() {
		return 1 // stop as soon as possible after a panic
	}
	defer func() {
		if r := recover(); r != nil {
			cb.recordPanic("progress", r)
			ret = 1
		}
	}()
	if cb.progress(done, total) {
		return 0
	}
	return 1
}

// onLog is what the generated trampoline calls.
func (cb *callbacks) onLog(level LogLevel, message string) {
	if cb.hasPanicked() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			cb.recordPanic("log", r)
		}
	}()
	cb.log(level, message)
}

func (cb *callbacks) hasPanicked() bool {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.panicked != nil
}

func (cb *callbacks) recordPanic(which string, value interface{}) {
	stack := debug.Stack()
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.panicked == nil {
		cb.panicked = &CallbackPanic{Callback: which, Value: value, Stack: stack}
	}
}

// takePanic returns (and clears) a panic recorded during the last native
// call. Call it after every native call that may call back.
func (cb *callbacks) takePanic() *CallbackPanic {
	if cb == nil {
		return nil
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	p := cb.panicked
	cb.panicked = nil
	return p
}
