// Hand-written tests: every kind of failure surfaces as *Error, with the
// library's own message where the library found it.

package gptq

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"
)

// libraryMessage runs a failing low-level call and returns its message.
func libraryMessage(t *testing.T, want Status, call func() (Status, string)) string {
	t.Helper()
	st, msg := call()
	if st != want || msg == "" {
		t.Fatalf("low-level call: (%v, %q), want %v with a message", st, msg, want)
	}
	return msg
}

func TestErrorKinds(t *testing.T) {
	const out, in, rows = 32, 64, 48
	x, w := layerData(10, out, in, rows)

	t.Run("bad sizes", func(t *testing.T) {
		_, err := NewContext(0, in, nil)
		e := asError(t, err, ErrInvalidSize)
		var p *c_gptq_ctx
		if want := libraryMessage(t, ErrInvalidSize, func() (Status, string) { return c_gptq_ctx_create(0, in, nil, &p) }); e.Message != want {
			t.Fatalf("message %q, library says %q", e.Message, want)
		}
		if !strings.Contains(err.Error(), "GPTQ_ERR_INVALID_SIZE") || !strings.Contains(err.Error(), e.Message) {
			t.Fatalf("Error() = %q", err.Error())
		}
		ctx, err := NewContext(out, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		// Found in Go: slice lengths that do not fit the shape.
		e = asError(t, ctx.AddBatch(x[:len(x)-1], rows, rows), ErrSizeMismatch)
		if !strings.Contains(e.Message, "gptq.Context.AddBatch") {
			t.Fatalf("message %q does not name the method", e.Message)
		}
		asError(t, ctx.AddBatch(x, rows+1, rows), ErrSizeMismatch)
		asError(t, ctx.AddBatch(x, 0, 1), ErrInvalidSize)
		asError(t, ctx.AddBatch(nil, 1, 1), ErrSizeMismatch)
		asError(t, ctx.ImportHessian(make([]float64, in*in-1), 1), ErrSizeMismatch)
		// Found by the library: samples < 1.
		e = asError(t, ctx.AddBatch(x, rows, 0), ErrInvalidSize)
		var lc *c_gptq_ctx
		c_gptq_ctx_create(out, in, nil, &lc)
		defer c_gptq_ctx_destroy(lc)
		if want := libraryMessage(t, ErrInvalidSize, func() (Status, string) {
			return c_gptq_add_batch(lc, unsafe.Pointer(&x[0]), DtypeF32, rows, in, 0)
		}); e.Message != want {
			t.Fatalf("message %q, library says %q", e.Message, want)
		}
		if err := ctx.AddBatch(x, rows, rows); err != nil {
			t.Fatal(err)
		}
		_, _, err = ctx.Quantize(w[:out*in-in])
		asError(t, err, ErrSizeMismatch)
		q, _, err := ctx.Quantize(w)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		_, err = q.Matmul(x[:in+1], 1, nil)
		asError(t, err, ErrSizeMismatch)
		_, err = q.Matmul(x[:in], 1, make([]float32, out-1))
		asError(t, err, ErrSizeMismatch)
		_, err = q.Matmul(x[:in], 0, nil)
		asError(t, err, ErrInvalidSize)
		_, err = q.Matmul(x[:in], 1<<40, nil) // checked before it sizes y
		asError(t, err, ErrSizeMismatch)
		_, err = q.MatmulF16(make([]uint16, in), 1<<40, nil)
		asError(t, err, ErrSizeMismatch)
		asError(t, ctx.AddBatch(x, 1<<40, 1), ErrSizeMismatch)
		asError(t, q.MatmulInto(make([]float32, out), x[:2*in], 2, nil, nil), ErrSizeMismatch)
		_, err = q.MatmulWith(x[:in], 1, nil, &MatmulOptions{NumThreads: -1})
		e = asError(t, err, ErrInvalidConfig)
		if !strings.Contains(e.Message, "num_threads") {
			t.Fatalf("message %q", e.Message)
		}
		_, err = CheckpointSizesFor(33, in, 4, 32)
		asError(t, err, ErrUnsupported)

		// Checkpoint buffers too short: the library's check and message.
		ck, err := q.Export(FormatV1)
		if err != nil {
			t.Fatal(err)
		}
		short := *ck
		short.QWeight = short.QWeight[:3]
		_, err = ImportQTensor(out, in, 4, 128, FormatV1, &short)
		e = asError(t, err, ErrSizeMismatch)
		if !strings.HasPrefix(e.Message, "gptq_qtensor_import: qweight has 3 elements") {
			t.Fatalf("message %q", e.Message)
		}
		short.QWeight = nil
		_, err = ImportQTensor(out, in, 4, 128, FormatV1, &short)
		asError(t, err, ErrSizeMismatch)
		_, err = ImportQTensor(out, in, 4, 128, FormatV1, nil)
		asError(t, err, ErrNullPointer)
		bad := *ck
		bad.GIdx = append([]int32(nil), ck.GIdx...)
		bad.GIdx[5] = 99
		_, err = ImportQTensor(out, in, 4, 128, FormatV1, &bad)
		e = asError(t, err, ErrInvalidData)
		if !strings.Contains(e.Message, "g_idx[5] is 99") {
			t.Fatalf("message %q", e.Message)
		}
	})

	t.Run("NaN", func(t *testing.T) {
		ctx, err := NewContext(out, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		xn := append([]float32(nil), x...)
		xn[3*in+7] = float32(math.NaN())
		e := asError(t, ctx.AddBatch(xn, rows, rows), ErrNonFinite)
		var lc *c_gptq_ctx
		c_gptq_ctx_create(out, in, nil, &lc)
		defer c_gptq_ctx_destroy(lc)
		if want := libraryMessage(t, ErrNonFinite, func() (Status, string) {
			return c_gptq_add_batch(lc, unsafe.Pointer(&xn[0]), DtypeF32, rows, in, rows)
		}); e.Message != want {
			t.Fatalf("message %q, library says %q", e.Message, want)
		}
		if ctx.Samples() != 0 {
			t.Fatal("a failed AddBatch changed the context")
		}
		if err := ctx.AddBatch(x, rows, rows); err != nil {
			t.Fatal(err)
		}
		wn := append([]float32(nil), w...)
		wn[100] = float32(math.Inf(-1))
		_, _, err = ctx.Quantize(wn)
		asError(t, err, ErrNonFinite)
		h := make([]float64, in*in)
		h[0] = math.NaN()
		asError(t, ctx.ImportHessian(h, 1), ErrNonFinite)
	})

	t.Run("bits 9", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Bits = 9
		_, err := NewContext(out, in, &cfg)
		e := asError(t, err, ErrInvalidConfig)
		var cc c_gptq_config
		c_gptq_config_default(&cc)
		cc.bits = 9
		var p *c_gptq_ctx
		if want := libraryMessage(t, ErrInvalidConfig, func() (Status, string) { return c_gptq_ctx_create(out, in, &cc, &p) }); e.Message != want {
			t.Fatalf("message %q, library says %q", e.Message, want)
		}
		if !strings.Contains(e.Message, "bits is 9") {
			t.Fatalf("message %q", e.Message)
		}
		// An int that would truncate to a valid int32 is refused in Go.
		cfg.Bits = 1<<32 + 4
		_, err = NewContext(out, in, &cfg)
		asError(t, err, ErrInvalidConfig)
		cfg = DefaultConfig()
		cfg.LogLevel = 7
		_, err = NewContext(out, in, &cfg)
		asError(t, err, ErrInvalidConfig)
		_, err = CheckpointSizesFor(out, in, 9, 32)
		asError(t, err, ErrInvalidConfig)
	})

	t.Run("quantize before add_batch", func(t *testing.T) {
		ctx, err := NewContext(out, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		q, _, err := ctx.Quantize(w)
		e := asError(t, err, ErrInvalidState)
		if q != nil {
			t.Fatal("a failed Quantize returned a tensor")
		}
		var lc *c_gptq_ctx
		c_gptq_ctx_create(out, in, nil, &lc)
		defer c_gptq_ctx_destroy(lc)
		var lq *c_gptq_qtensor
		if want := libraryMessage(t, ErrInvalidState, func() (Status, string) {
			return c_gptq_quantize(lc, unsafe.Pointer(&w[0]), DtypeF32, out, in, &lq, nil)
		}); e.Message != want {
			t.Fatalf("message %q, library says %q", e.Message, want)
		}
		if !errors.Is(err, ErrInvalidState) || errors.Is(err, ErrUnsupported) ||
			!errors.Is(err, &Error{Status: ErrInvalidState}) || errors.Is(err, &Error{Status: ErrInvalidState, Message: "other"}) {
			t.Fatal("errors.Is does not compare by status")
		}
		var st Status
		if !errors.As(err, &st) || st != ErrInvalidState {
			t.Fatal("errors.As to Status")
		}
		// Merging a context into itself is the library's INVALID_STATE.
		e = asError(t, ctx.Merge(ctx), ErrInvalidState)
		if !strings.HasPrefix(e.Message, "gptq_ctx_merge") {
			t.Fatalf("message %q", e.Message)
		}
		asError(t, ctx.Merge(nil), ErrNullPointer)
	})

	t.Run("v1 export of asymmetric zero 0", func(t *testing.T) {
		// All-positive weights: xmin = 0, so an asymmetric zero of 0.
		wp := make([]float32, len(w))
		for i, v := range w {
			wp[i] = float32(math.Abs(float64(v))) + 0.001
		}
		cfg := DefaultConfig()
		cfg.Sym = false
		cfg.GroupSize = 32
		q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, wp)
		defer q.Close()
		_, err := q.Export(FormatV1)
		e := asError(t, err, ErrUnsupported)

		var cc c_gptq_config
		c_gptq_config_default(&cc)
		cc.sym, cc.group_size = 0, 32
		var lc *c_gptq_ctx
		c_gptq_ctx_create(out, in, &cc, &lc)
		defer c_gptq_ctx_destroy(lc)
		c_gptq_add_batch(lc, unsafe.Pointer(&x[0]), DtypeF32, rows, in, rows)
		var lq *c_gptq_qtensor
		if st, msg := c_gptq_quantize(lc, unsafe.Pointer(&wp[0]), DtypeF32, out, in, &lq, nil); st != OK {
			t.Fatal(msg)
		}
		defer c_gptq_qtensor_destroy(lq)
		s, _ := CheckpointSizesFor(out, in, 4, 32)
		c, err := newCCheckpoint("test", s.QWeightRows*s.QWeightCols, s.QZerosRows*s.QZerosCols, s.ScalesRows*s.ScalesCols, s.GIdxLen, true)
		if err != nil {
			t.Fatal(err)
		}
		defer c.free()
		if want := libraryMessage(t, ErrUnsupported, func() (Status, string) { return c_gptq_qtensor_export(lq, FormatV1, c.t) }); e.Message != want {
			t.Fatalf("message %q, library says %q", e.Message, want)
		}
		if _, err := q.Export(FormatV2); err != nil {
			t.Fatalf("v2 export: %v", err)
		}
	})

	t.Run("status strings", func(t *testing.T) {
		if ErrCancelled.String() != "GPTQ_ERR_CANCELLED" || OK.String() != "GPTQ_OK" || Status(99).String() != "Status(99)" {
			t.Fatal(ErrCancelled.String(), OK.String(), Status(99).String())
		}
		if !strings.HasPrefix(ErrCancelled.Error(), "GPTQ_ERR_CANCELLED: ") {
			t.Fatal(ErrCancelled.Error())
		}
	})
}
