// Hand-written tests of the progress and log callbacks.

package gptq

import (
	"errors"
	"strings"
	"testing"
)

// callbackLayer makes a context with cfg (block size 16 over 128 columns:
// 8 progress calls per Quantize) that has seen calibration data.
func callbackLayer(t *testing.T, cfg *Config) (*Context, []float32) {
	t.Helper()
	const out, in, rows = 32, 128, 64
	x, w := layerData(11, out, in, rows)
	cfg.BlockSize = 16
	cfg.GroupSize = 32
	ctx, err := NewContext(out, in, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctx.AddBatch(x, rows, rows); err != nil {
		t.Fatal(err)
	}
	return ctx, w
}

func TestProgressCallsPerBlock(t *testing.T) {
	var calls [][2]int64
	cfg := DefaultConfig()
	cfg.Progress = func(done, total int64) bool {
		calls = append(calls, [2]int64{done, total})
		return true
	}
	ctx, w := callbackLayer(t, &cfg)
	defer ctx.Close()
	q, _, err := ctx.Quantize(w)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if len(calls) != 8 {
		t.Fatalf("%d progress calls, want 8 (128 columns in blocks of 16): %v", len(calls), calls)
	}
	for i, c := range calls {
		if c[0] != int64(16*(i+1)) || c[1] != 128 {
			t.Fatalf("progress call %d was (%d, %d)", i, c[0], c[1])
		}
	}
}

func TestCancelStops(t *testing.T) {
	for _, stopAt := range []int{1, 3, 8} {
		calls := 0
		cancel := true
		cfg := DefaultConfig()
		cfg.Progress = func(done, total int64) bool {
			calls++
			return !(cancel && calls == stopAt)
		}
		ctx, w := callbackLayer(t, &cfg)
		q, _, err := ctx.Quantize(w)
		e := asError(t, err, ErrCancelled)
		if q != nil {
			t.Fatal("a cancelled Quantize returned a tensor")
		}
		if calls != stopAt {
			t.Fatalf("cancelled at call %d, but progress was called %d times", stopAt, calls)
		}
		if !strings.Contains(e.Message, "cancelled") {
			t.Fatalf("message %q", e.Message)
		}
		// The context is unchanged: quantizing again gives what a context
		// that was never cancelled gives.
		cancel = false
		q, _, err = ctx.Quantize(w)
		if err != nil {
			t.Fatal(err)
		}
		ctx.Close()
		plain := DefaultConfig()
		refCtx, _ := callbackLayer(t, &plain)
		rq, _, err := refCtx.Quantize(w)
		if err != nil {
			t.Fatal(err)
		}
		c1, _ := q.Codes()
		c2, _ := rq.Codes()
		if i, ok := sameSlice(c1, c2); !ok {
			t.Fatalf("after a cancel, codes differ at %d", i)
		}
		q.Close()
		rq.Close()
		refCtx.Close()
	}
}

func TestLogCallback(t *testing.T) {
	type entry struct {
		level LogLevel
		msg   string
	}
	var got []entry
	cfg := DefaultConfig()
	cfg.LogLevel = LogDebug
	cfg.Log = func(level LogLevel, msg string) { got = append(got, entry{level, msg}) }
	ctx, w := callbackLayer(t, &cfg)
	defer ctx.Close()
	q, _, err := ctx.Quantize(w)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if len(got) == 0 {
		t.Fatal("no log messages at level debug")
	}
	sawDebug := false
	for _, e := range got {
		if e.level < LogDebug || e.level > LogError || e.msg == "" {
			t.Fatalf("bad log entry %+v", e)
		}
		sawDebug = sawDebug || (e.level == LogDebug && strings.Contains(e.msg, "gptq_solve"))
	}
	if !sawDebug {
		t.Fatalf("no debug message from the solver in %+v", got)
	}

	// At level error, a normal run logs nothing.
	got = nil
	quiet := DefaultConfig()
	quiet.LogLevel = LogError
	quiet.Log = cfg.Log
	ctx2, w := callbackLayer(t, &quiet)
	defer ctx2.Close()
	q, _, err = ctx2.Quantize(w)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if len(got) != 0 {
		t.Fatalf("logged at level error: %+v", got)
	}
}

// catchPanic runs f and returns the *CallbackPanic it panicked with.
func catchPanic(t *testing.T, f func()) (p *CallbackPanic) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("no panic")
		}
		var ok bool
		if p, ok = r.(*CallbackPanic); !ok {
			t.Fatalf("panicked with %T %v, want *CallbackPanic", r, r)
		}
	}()
	f()
	return nil
}

// TestCallbackPanics: a panicking callback does not unwind through the
// library; the method re-panics afterwards and the context stays usable.
func TestCallbackPanics(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	panicNow := true
	cfg := DefaultConfig()
	cfg.Progress = func(done, total int64) bool {
		calls++
		if panicNow && calls == 2 {
			panic(boom)
		}
		return true
	}
	ctx, w := callbackLayer(t, &cfg)
	defer ctx.Close()
	p := catchPanic(t, func() { ctx.Quantize(w) })
	if p.Callback != "progress" || p.Value != boom || !errors.Is(p, boom) || len(p.Stack) == 0 ||
		!strings.Contains(p.Error(), "boom") {
		t.Fatalf("CallbackPanic %+v", p)
	}
	if calls != 2 {
		t.Fatalf("progress called %d times; a panic must cancel at once", calls)
	}
	panicNow = false
	q, _, err := ctx.Quantize(w)
	if err != nil {
		t.Fatalf("the context is not usable after a callback panic: %v", err)
	}
	q.Close()

	logPanic := false
	lcfg := DefaultConfig()
	lcfg.LogLevel = LogDebug
	logged := 0
	lcfg.Log = func(level LogLevel, msg string) {
		logged++
		if logPanic {
			panic("log boom")
		}
	}
	lctx, w := callbackLayer(t, &lcfg)
	defer lctx.Close()
	logPanic, logged = true, 0
	p = catchPanic(t, func() { lctx.Quantize(w) })
	if p.Callback != "log" || p.Value != "log boom" || logged != 1 {
		t.Fatalf("CallbackPanic %+v after %d log calls", p, logged)
	}
	logPanic = false
	q, _, err = lctx.Quantize(w)
	if err != nil {
		t.Fatalf("the context is not usable after a log panic: %v", err)
	}
	q.Close()
	if logged < 2 {
		t.Fatal("logging stopped after a recovered panic")
	}

	// A log callback that panics while the context is being created (the
	// library logs its backend choice): NewContext re-panics, and nothing
	// leaks into a later context.
	logPanic = true
	p = catchPanic(t, func() { NewContext(32, 128, &lcfg) })
	if p.Callback != "log" {
		t.Fatalf("CallbackPanic %+v", p)
	}
}
