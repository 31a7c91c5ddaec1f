// Package gptq is the Go binding of libgptq: GPTQ post-training quantization
// of linear layers (Frantar et al., 2022) and matrix products with the
// quantized weights.
//
// The usual sequence for one layer with weight W [out, in]:
//
//	cfg := gptq.DefaultConfig() // the library's own defaults
//	cfg.Bits, cfg.GroupSize = 4, 128
//	ctx, err := gptq.NewContext(out, in, &cfg)
//	defer ctx.Close()
//	for each calibration batch x [rows, in]:
//	    err = ctx.AddBatch(x, rows, samples)
//	q, stats, err := ctx.Quantize(w)        // w is [out, in], row-major
//	defer q.Close()
//	ckpt, err := q.Export(gptq.FormatV2)    // qweight / qzeros / scales / g_idx
//	y, err := q.Matmul(x, rows, nil)        // y = x·Wqᵀ
//
// All matrices are dense, row-major slices; lengths are checked in Go before
// any native call (a wrong length is an *Error with status ErrSizeMismatch),
// and everything else is checked by the library, whose message the *Error
// carries unchanged. include/gptq.h is the full contract.
//
// # Errors
//
// Every failure is an *Error holding the library's Status and message. The
// Status constants (ErrSizeMismatch, ErrInvalidState, ...) are errors too, so
// errors.Is(err, gptq.ErrInvalidState) tests the kind of a failure, and
// errors.As(err, &e) with e *gptq.Error gives the message. The message is
// captured inside the same native call that failed, so it is always the
// calling goroutine's own, whatever OS thread the goroutine runs on.
//
// # Threads and goroutines
//
// A Context must be used by one goroutine at a time: the library does no
// locking of its own. This package serializes the methods of one Context
// with a mutex, so concurrent use is safe but not parallel; calibrate
// different layers (or shards of one layer, see Context.Merge) in different
// Contexts to use more cores. Callbacks run on the goroutine that made the
// call, while the Context is locked: they must not call methods of the same
// Context (that deadlocks).
//
// A QTensor is immutable once made: any number of goroutines may call
// Matmul, Dequantize, Codes, Export and Info on one QTensor at the same time.
// Close waits for calls in progress.
//
// # Lifetime
//
// Context and QTensor own native memory. Call Close when done (it is
// idempotent); a finalizer frees objects that are dropped without Close, but
// native memory is invisible to the Go garbage collector, so do not rely on
// it. A QTensor stays valid after the Context that made it is closed.
//
// # Callbacks
//
// Config.Progress and Config.Log are Go functions called from inside the
// library. They are kept alive until the Context is closed. A panic in a
// callback never unwinds through the library's C++ frames: it is recovered
// in Go, the operation is cancelled (Progress) or the remaining log messages
// are dropped (Log), and once the native call has returned and cleaned up,
// the method that made the call panics with a *CallbackPanic that holds the
// original value and stack. Callbacks must not call runtime.Goexit (nor
// testing's t.FailNow / t.Fatal, which use it).
//
// # Building
//
// The package links -lgptq and includes gptq.h. Against an uninstalled build
// tree set CGO_CFLAGS=-I<repo>/include, CGO_LDFLAGS=-L<build> and
// LD_LIBRARY_PATH=<build> (bindings/go/test.sh does), or build with
// -tags gptq_pkgconfig to take the flags from pkg-config.
package gptq
