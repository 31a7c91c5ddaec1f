package gptq

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Context is the configuration and Hessian accumulator of one linear layer
// with weight [out, in] (gptq_ctx). Create it with NewContext, feed it
// calibration activations with AddBatch, then Quantize the layer's weights.
//
// The methods of one Context are serialized by a mutex (the library itself
// requires one thread at a time per context); see the package documentation.
type Context struct {
	mu  sync.Mutex
	ptr *c_gptq_ctx // nil once closed
	out int
	in  int
	cb  *callbacks // nil without callbacks
	id  uint64     // lock order for Merge
}

var contextIDs uint64

// NewContext creates a context for a layer with weight [outFeatures,
// inFeatures]. cfg may be nil for DefaultConfig(); it is copied, and its
// callbacks are kept until Close.
func NewContext(outFeatures, inFeatures int, cfg *Config) (*Context, error) {
	const where = "gptq.NewContext"
	var cc *c_gptq_config
	var cb *callbacks
	if cfg != nil {
		c, err := cfg.toC(where)
		if err != nil {
			return nil, err
		}
		cb = installCallbacks(cfg, &c)
		cc = &c
	}
	var p *c_gptq_ctx
	st, msg := c_gptq_ctx_create(int64(outFeatures), int64(inFeatures), cc, &p)
	if pn := cb.takePanic(); pn != nil { // a log callback panicked
		c_gptq_ctx_destroy(p)
		cb.release()
		panic(pn)
	}
	if st != OK {
		cb.release()
		return nil, statusError(st, msg)
	}
	c := &Context{ptr: p, out: outFeatures, in: inFeatures, cb: cb,
		id: atomic.AddUint64(&contextIDs, 1)}
	runtime.SetFinalizer(c, func(c *Context) { c.Close() })
	return c, nil
}

// Close frees the context and releases its callbacks. It is idempotent and
// always returns nil. QTensors made by the context stay valid.
func (c *Context) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return nil
	}
	c_gptq_ctx_destroy(c.ptr)
	c.ptr = nil
	c.cb.release() // only now can the library no longer call back
	runtime.SetFinalizer(c, nil)
	return nil
}

// OutFeatures returns the layer's output features (rows of its weight).
func (c *Context) OutFeatures() int { return c.out }

// InFeatures returns the layer's input features (columns of its weight,
// width of its activations).
func (c *Context) InFeatures() int { return c.in }

// lock locks c and fails if it is closed. On success the caller must call
// c.unlock().
func (c *Context) lock(where string) error {
	c.mu.Lock()
	if c.ptr == nil {
		c.mu.Unlock()
		return goError(ErrInvalidState, where, "the Context is closed")
	}
	return nil
}

// unlock unlocks c and re-raises a callback's panic recorded during the
// native calls made under the lock.
func (c *Context) unlock() {
	p := c.cb.takePanic()
	c.mu.Unlock()
	runtime.KeepAlive(c)
	if p != nil {
		panic(p)
	}
}

// AddBatch adds calibration activations x [rows, InFeatures()] (row-major,
// one token per row) to the Hessian. samples is the number of calibration
// samples the rows stand for, i.e. the weight of this batch in the running
// mean (pass rows for a per-token mean; the reference implementation
// counts an input [batch, seq, in] as batch samples). On any error the
// Hessian is unchanged.
func (c *Context) AddBatch(x []float32, rows int, samples int64) error {
	return c.addBatch("gptq.Context.AddBatch", slicePtr(x), len(x), DtypeF32, rows, samples)
}

// AddBatchF16 is AddBatch for IEEE binary16 activations given as bit
// patterns.
func (c *Context) AddBatchF16(x []uint16, rows int, samples int64) error {
	return c.addBatch("gptq.Context.AddBatchF16", slicePtr(x), len(x), DtypeF16, rows, samples)
}

// AddBatchBF16 is AddBatch for bfloat16 activations given as bit patterns.
func (c *Context) AddBatchBF16(x []uint16, rows int, samples int64) error {
	return c.addBatch("gptq.Context.AddBatchBF16", slicePtr(x), len(x), DtypeBF16, rows, samples)
}

func (c *Context) addBatch(where string, x unsafe.Pointer, n int, dtype Dtype, rows int, samples int64) error {
	if err := c.lock(where); err != nil {
		return err
	}
	defer c.unlock()
	if err := checkMatrix(where, "x", n, rows, c.in); err != nil {
		return err
	}
	return statusError(c_gptq_add_batch(c.ptr, x, dtype, int64(rows), int64(c.in), samples))
}

// Samples returns the number of calibration samples seen so far, or -1 if
// the context is closed.
func (c *Context) Samples() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return -1
	}
	n := c_gptq_ctx_samples(c.ptr)
	runtime.KeepAlive(c)
	return n
}

// Merge merges the Hessian of src into c, as if c had seen src's batches
// too (calibration sharded over goroutines, processes or machines). src is
// unchanged. Merging a context into itself is an ErrInvalidState error.
func (c *Context) Merge(src *Context) error {
	const where = "gptq.Context.Merge"
	if src == nil || src == c {
		// The library's own checks (NULL, dst == src) and messages.
		if err := c.lock(where); err != nil {
			return err
		}
		defer c.unlock()
		var sp *c_gptq_ctx
		if src != nil {
			sp = c.ptr
		}
		return statusError(c_gptq_ctx_merge(c.ptr, sp))
	}
	first, second := c, src // a fixed lock order: two opposite merges do not deadlock
	if second.id < first.id {
		first, second = second, first
	}
	if err := first.lock(where); err != nil {
		return err
	}
	defer first.unlock()
	if err := second.lock(where); err != nil {
		return err
	}
	defer second.unlock()
	return statusError(c_gptq_ctx_merge(c.ptr, src.ptr))
}

// ExportHessian returns a copy of the Hessian [InFeatures(), InFeatures()]
// (row-major) and the number of samples it was averaged over.
func (c *Context) ExportHessian() ([]float64, int64, error) {
	const where = "gptq.Context.ExportHessian"
	if err := c.lock(where); err != nil {
		return nil, 0, err
	}
	defer c.unlock()
	h := make([]float64, c.in*c.in)
	var samples int64
	if err := statusError(c_gptq_ctx_export_hessian(c.ptr, &h[0], int64(len(h)), &samples)); err != nil {
		return nil, 0, err
	}
	return h, samples, nil
}

// ImportHessian merges a Hessian h [InFeatures(), InFeatures()] (row-major,
// e.g. from ExportHessian on another machine) averaged over samples samples
// into the context, exactly as Merge would; into an empty context this is a
// plain load.
func (c *Context) ImportHessian(h []float64, samples int64) error {
	const where = "gptq.Context.ImportHessian"
	if err := c.lock(where); err != nil {
		return err
	}
	defer c.unlock()
	if err := checkMatrix(where, "h", len(h), c.in, c.in); err != nil {
		return err
	}
	return statusError(c_gptq_ctx_import_hessian(c.ptr, &h[0], int64(len(h)), samples))
}

// Quantize quantizes the layer's weights w [OutFeatures(), InFeatures()]
// (row-major) with the Hessian collected so far. The context is not
// consumed: more batches may be added and Quantize called again. On error
// (ErrInvalidState before any AddBatch, ErrCancelled from Progress, ...)
// the context is unchanged and usable.
func (c *Context) Quantize(w []float32) (*QTensor, QuantStats, error) {
	return c.quantize("gptq.Context.Quantize", slicePtr(w), len(w), DtypeF32)
}

// QuantizeF16 is Quantize for IEEE binary16 weights given as bit patterns.
func (c *Context) QuantizeF16(w []uint16) (*QTensor, QuantStats, error) {
	return c.quantize("gptq.Context.QuantizeF16", slicePtr(w), len(w), DtypeF16)
}

// QuantizeBF16 is Quantize for bfloat16 weights given as bit patterns.
func (c *Context) QuantizeBF16(w []uint16) (*QTensor, QuantStats, error) {
	return c.quantize("gptq.Context.QuantizeBF16", slicePtr(w), len(w), DtypeBF16)
}

func (c *Context) quantize(where string, w unsafe.Pointer, n int, dtype Dtype) (*QTensor, QuantStats, error) {
	if err := c.lock(where); err != nil {
		return nil, QuantStats{}, err
	}
	// Not deferred: a callback's panic is re-raised by unlock, and q must be
	// freed first.
	if err := checkMatrix(where, "w", n, c.out, c.in); err != nil {
		c.unlock()
		return nil, QuantStats{}, err
	}
	var q *c_gptq_qtensor
	var stats c_gptq_quant_stats
	stats.struct_size = c_sizeof_gptq_quant_stats
	st, msg := c_gptq_quantize(c.ptr, w, dtype, int64(c.out), int64(c.in), &q, &stats)
	if c.cb != nil && c.cb.hasPanicked() {
		c_gptq_qtensor_destroy(q)
	}
	c.unlock()
	if st != OK {
		return nil, QuantStats{}, statusError(st, msg)
	}
	t, err := newQTensor(q)
	if err != nil {
		return nil, QuantStats{}, err
	}
	return t, statsFromC(&stats), nil
}

// slicePtr is &s[0], or nil for an empty slice.
func slicePtr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// checkMatrix checks that a slice of n elements is a [rows, cols] matrix,
// rows >= 1. cols >= 1 is known.
func checkMatrix(where, name string, n, rows, cols int) error {
	if rows < 1 {
		return goError(ErrInvalidSize, where, "rows is %d; it must be >= 1", rows)
	}
	if n%cols != 0 || n/cols != rows {
		return goError(ErrSizeMismatch, where, "%s has %d elements but [%d, %d] needs %d",
			name, n, rows, cols, int64(rows)*int64(cols))
	}
	return nil
}
