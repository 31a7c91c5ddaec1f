// Hand-written smoke tests of the generated low-level layer (zgenerated.go),
// run against a real libgptq. See bindings/test_lowlevel.sh for the
// environment they need.

package gptq

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestVersion(t *testing.T) {
	n := c_gptq_version_number()
	if n/10000 != VersionMajor || n < VersionNumber {
		t.Fatalf("library version %d does not serve header version %d", n, VersionNumber)
	}
	want := fmt.Sprintf("%d.%d.%d", n/10000, n/100%100, n%100)
	if got := c_gptq_version_string(); got != want {
		t.Fatalf("gptq_version_string() = %q, want %q", got, want)
	}
}

func TestErrorTravelsWithStatus(t *testing.T) {
	var ctx *c_gptq_ctx
	st, msg := c_gptq_ctx_create(0, 16, nil, &ctx)
	if st != ErrInvalidSize || msg == "" || ctx != nil {
		t.Fatalf("got (%d, %q, %p), want ErrInvalidSize with a message and no context", st, msg, ctx)
	}
	if name := c_gptq_status_string(st); !strings.HasPrefix(name, "GPTQ_ERR_INVALID_SIZE") {
		t.Fatalf("gptq_status_string = %q", name)
	}
}

// quantizeWithProgress runs one small layer through create / add_batch /
// quantize with a Go progress callback that returns `answer`, and a Go log
// callback at level debug whose messages it returns.
func quantizeWithProgress(t *testing.T, answer int32) (Status, string, int, []string) {
	const out, in, rows = 8, 64, 32
	var cfg c_gptq_config
	c_gptq_config_default(&cfg)
	if cfg.struct_size != c_sizeof_gptq_config || cfg.bits != 4 {
		t.Fatalf("gptq_config_default: struct_size %d bits %d", cfg.struct_size, cfg.bits)
	}
	calls := 0
	fn, userData, handle := c_gptq_progress_fn_new(func(done, total int64) int32 {
		calls++
		return answer
	})
	defer handle.Delete()
	cfg.progress = fn
	cfg.progress_user_data = userData
	var logged []string
	logFn, logUserData, logHandle := c_gptq_log_fn_new(func(level LogLevel, message string) {
		logged = append(logged, fmt.Sprintf("%d %s", level, message))
	})
	defer logHandle.Delete()
	cfg.log = logFn
	cfg.log_user_data = logUserData
	cfg.log_level = c_gptq_log_level(LogDebug)
	cfg.block_size = 16

	var ctx *c_gptq_ctx
	if st, msg := c_gptq_ctx_create(out, in, &cfg, &ctx); st != OK {
		t.Fatalf("gptq_ctx_create: %d %s", st, msg)
	}
	defer c_gptq_ctx_destroy(ctx)

	x := make([]float32, rows*in)
	for i := range x {
		x[i] = float32((i*7919)%23) - 11
	}
	if st, msg := c_gptq_add_batch(ctx, unsafe.Pointer(&x[0]), DtypeF32, rows, in-1, rows); st != ErrSizeMismatch || msg == "" {
		t.Fatalf("add_batch with the wrong width: %d %q", st, msg)
	}
	if st, msg := c_gptq_add_batch(ctx, unsafe.Pointer(&x[0]), DtypeF32, rows, in, rows); st != OK {
		t.Fatalf("gptq_add_batch: %d %s", st, msg)
	}
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32((i*104729)%17)/8 - 1
	}
	var q *c_gptq_qtensor
	var stats c_gptq_quant_stats
	stats.struct_size = c_sizeof_gptq_quant_stats
	st, msg := c_gptq_quantize(ctx, unsafe.Pointer(&w[0]), DtypeF32, out, in, &q, &stats)
	c_gptq_qtensor_destroy(q)
	return st, msg, calls, logged
}

func TestProgressCallback(t *testing.T) {
	st, msg, calls, logged := quantizeWithProgress(t, 0)
	if st != OK || calls == 0 || len(logged) == 0 {
		t.Fatalf("quantize: %d %q after %d progress calls, log %q", st, msg, calls, logged)
	}
	st, msg, calls, _ = quantizeWithProgress(t, 1)
	if st != ErrCancelled || msg == "" || calls == 0 {
		t.Fatalf("cancelled quantize: %d %q after %d progress calls", st, msg, calls)
	}
}

// TestErrorsUnderConcurrency: many goroutines fail with distinct messages
// while yielding between calls (so they hop between OS threads); each must
// get its own message, which only works because the message is read in the
// same native call as the failure.
func TestErrorsUnderConcurrency(t *testing.T) {
	const in = 512
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var ctx *c_gptq_ctx
			if st, msg := c_gptq_ctx_create(1, in, nil, &ctx); st != OK {
				errs <- msg
				return
			}
			defer c_gptq_ctx_destroy(ctx)
			x := make([]float32, in)
			for i := 0; i < 300; i++ {
				cols := int64(100 + (g*300+i)%400)
				st, msg := c_gptq_add_batch(ctx, unsafe.Pointer(&x[0]), DtypeF32, 1, cols, 1)
				want := fmt.Sprintf("x has %d columns", cols)
				if st != ErrSizeMismatch || !strings.Contains(msg, want) {
					errs <- fmt.Sprintf("goroutine %d: got (%d, %q), want a message with %q", g, st, msg, want)
					return
				}
				runtime.Gosched()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
