package gptq

// #include <stdint.h>
import "C"

import (
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// QTensor is a quantized weight matrix (gptq_qtensor): integer codes with
// per-group scales and zeros, made by Context.Quantize or ImportQTensor. It
// is immutable: any number of goroutines may use one QTensor at once.
type QTensor struct {
	mu   sync.RWMutex // read-locked by every call, locked by Close
	ptr  *c_gptq_qtensor
	info QTensorInfo
	grid Grid // gptq_qtensor_grid, fixed for life
}

// QTensorInfo is the shape and parameters of a QTensor (gptq_qtensor_info).
type QTensorInfo struct {
	OutFeatures int  // N: rows of the original weight
	InFeatures  int  // K: columns of the original weight
	Bits        int  // 2..8
	GroupSize   int  // as configured; -1 for one group
	Groups      int  // G: number of scale/zero rows
	ActOrder    bool // g_idx is not j / group_size
}

// newQTensor wraps p (freeing it on failure).
func newQTensor(p *c_gptq_qtensor) (*QTensor, error) {
	var info c_gptq_qtensor_info
	if err := statusError(c_gptq_qtensor_get_info(p, &info)); err != nil {
		c_gptq_qtensor_destroy(p)
		return nil, err
	}
	q := &QTensor{ptr: p, info: QTensorInfo{
		OutFeatures: int(info.out_features),
		InFeatures:  int(info.in_features),
		Bits:        int(info.bits),
		GroupSize:   int(info.group_size),
		Groups:      int(info.groups),
		ActOrder:    info.act_order != 0,
	}, grid: c_gptq_qtensor_grid(p)}
	runtime.SetFinalizer(q, func(q *QTensor) { q.Close() })
	return q, nil
}

// Close frees the tensor, after waiting for calls in progress. It is
// idempotent and always returns nil.
func (q *QTensor) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ptr == nil {
		return nil
	}
	c_gptq_qtensor_destroy(q.ptr)
	q.ptr = nil
	runtime.SetFinalizer(q, nil)
	return nil
}

// Info returns the tensor's shape and parameters (also after Close).
func (q *QTensor) Info() QTensorInfo { return q.info }

func (q *QTensor) rlock(where string) error {
	q.mu.RLock()
	if q.ptr == nil {
		q.mu.RUnlock()
		return goError(ErrInvalidState, where, "the QTensor is closed")
	}
	return nil
}

func (q *QTensor) runlock() {
	q.mu.RUnlock()
	runtime.KeepAlive(q)
}

// Dequantize returns the dequantized weights scale·(code - zero) as a
// [OutFeatures, InFeatures] row-major matrix in the original column order:
// the weights Matmul multiplies by.
func (q *QTensor) Dequantize() ([]float32, error) {
	if err := q.rlock("gptq.QTensor.Dequantize"); err != nil {
		return nil, err
	}
	defer q.runlock()
	w := make([]float32, q.info.OutFeatures*q.info.InFeatures)
	if err := statusError(c_gptq_qtensor_dequantize(q.ptr, &w[0], int64(len(w)))); err != nil {
		return nil, err
	}
	return w, nil
}

// Codes returns the integer codes [OutFeatures, InFeatures], one byte
// each, original column order, values 0 .. 2^Bits - 1.
func (q *QTensor) Codes() ([]uint8, error) {
	if err := q.rlock("gptq.QTensor.Codes"); err != nil {
		return nil, err
	}
	defer q.runlock()
	codes := make([]uint8, q.info.OutFeatures*q.info.InFeatures)
	if err := statusError(c_gptq_qtensor_codes(q.ptr, &codes[0], int64(len(codes)))); err != nil {
		return nil, err
	}
	return codes, nil
}

// Matmul returns y = x·Wᵀ (+ bias) with W the dequantized weights:
// x is [rows, InFeatures], bias is [OutFeatures] or nil, y is
// [rows, OutFeatures], all row-major. Accumulation is in float32; the
// result equals dequantize-then-multiply up to float32 summation order. x
// and bias are not scanned for NaN/Inf.
func (q *QTensor) Matmul(x []float32, rows int, bias []float32) ([]float32, error) {
	return q.matmul32("gptq.QTensor.Matmul", x, rows, bias, nil)
}

// MatmulOptions say how a matmul computes (gptq_matmul_options). Start
// from DefaultMatmulOptions.
type MatmulOptions struct {
	// Int8Activations rounds each block of 32 activations to int8 with its
	// own scale and multiplies in integer arithmetic, for small batches on
	// CPUs with AVX2 and 2-, 3- and 4-bit tensors (others ignore it):
	// faster, with a relative L2 error of y of about 0.5-1% on LLM-like
	// activations. See include/gptq.h.
	Int8Activations bool
	// NumThreads for this call; 0 = one per core.
	NumThreads int
}

// DefaultMatmulOptions returns the library's defaults
// (gptq_matmul_options_default).
func DefaultMatmulOptions() MatmulOptions {
	var o c_gptq_matmul_options
	c_gptq_matmul_options_default(&o)
	return MatmulOptions{Int8Activations: o.int8_activations != 0, NumThreads: int(o.num_threads)}
}

func (o *MatmulOptions) toC(where string) (c_gptq_matmul_options, error) {
	var c c_gptq_matmul_options
	c_gptq_matmul_options_default(&c)
	if o.NumThreads < math.MinInt32 || o.NumThreads > math.MaxInt32 {
		return c, goError(ErrInvalidConfig, where, "MatmulOptions.NumThreads is %d, outside the int32 range", o.NumThreads)
	}
	c.int8_activations = cBool(o.Int8Activations)
	c.num_threads = C.int32_t(o.NumThreads)
	return c, nil
}

// MatmulWith is Matmul with options; nil opts is the defaults.
func (q *QTensor) MatmulWith(x []float32, rows int, bias []float32, opts *MatmulOptions) ([]float32, error) {
	return q.matmul32("gptq.QTensor.MatmulWith", x, rows, bias, opts)
}

func (q *QTensor) matmul32(where string, x []float32, rows int, bias []float32, opts *MatmulOptions) ([]float32, error) {
	// x first: rows must be checked before it sizes an allocation.
	if err := checkMatrix(where, "x", len(x), rows, q.info.InFeatures); err != nil {
		return nil, err
	}
	y := make([]float32, rows*q.info.OutFeatures)
	if err := q.matmul(where, slicePtr(x), len(x), rows, slicePtr(bias), len(bias), slicePtr(y), len(y), DtypeF32, opts); err != nil {
		return nil, err
	}
	return y, nil
}

// MatmulInto is MatmulWith writing into y, which must hold at least
// rows·OutFeatures elements (for engines that reuse their buffers).
func (q *QTensor) MatmulInto(y, x []float32, rows int, bias []float32, opts *MatmulOptions) error {
	return q.matmul("gptq.QTensor.MatmulInto", slicePtr(x), len(x), rows, slicePtr(bias), len(bias), slicePtr(y), len(y), DtypeF32, opts)
}

// MatmulF16 is Matmul for IEEE binary16 x, bias and y (bit patterns);
// accumulation is in float32 and y is rounded once, at the end.
func (q *QTensor) MatmulF16(x []uint16, rows int, bias []uint16) ([]uint16, error) {
	return q.matmul16("gptq.QTensor.MatmulF16", x, rows, bias, DtypeF16)
}

// MatmulBF16 is Matmul for bfloat16 x, bias and y (bit patterns);
// accumulation is in float32 and y is rounded once, at the end.
func (q *QTensor) MatmulBF16(x []uint16, rows int, bias []uint16) ([]uint16, error) {
	return q.matmul16("gptq.QTensor.MatmulBF16", x, rows, bias, DtypeBF16)
}

func (q *QTensor) matmul16(where string, x []uint16, rows int, bias []uint16, dtype Dtype) ([]uint16, error) {
	if err := checkMatrix(where, "x", len(x), rows, q.info.InFeatures); err != nil {
		return nil, err
	}
	y := make([]uint16, rows*q.info.OutFeatures)
	if err := q.matmul(where, slicePtr(x), len(x), rows, slicePtr(bias), len(bias), slicePtr(y), len(y), dtype, nil); err != nil {
		return nil, err
	}
	return y, nil
}

// matmul checks the lengths of x, bias and y (whose pointers C gets without
// them, or, for y, with one the library checks) and calls gptq_matmul, or
// gptq_matmul_ex with opts.
func (q *QTensor) matmul(where string, x unsafe.Pointer, xLen, rows int, bias unsafe.Pointer, biasLen int,
	y unsafe.Pointer, yLen int, dtype Dtype, opts *MatmulOptions) error {
	var co *c_gptq_matmul_options
	if opts != nil {
		c, err := opts.toC(where)
		if err != nil {
			return err
		}
		co = &c
	}
	if err := q.rlock(where); err != nil {
		return err
	}
	defer q.runlock()
	n, k := q.info.OutFeatures, q.info.InFeatures
	if err := checkMatrix(where, "x", xLen, rows, k); err != nil {
		return err
	}
	if bias != nil && biasLen != n {
		return goError(ErrSizeMismatch, where, "bias has %d elements but out_features is %d", biasLen, n)
	}
	if int64(yLen) < int64(rows)*int64(n) {
		return goError(ErrSizeMismatch, where, "y has %d elements but [%d, %d] needs %d", yLen, rows, n, int64(rows)*int64(n))
	}
	if co == nil {
		return statusError(c_gptq_matmul(q.ptr, x, dtype, int64(rows), int64(k), bias, y, int64(yLen)))
	}
	return statusError(c_gptq_matmul_ex(q.ptr, x, dtype, int64(rows), int64(k), bias, y, int64(yLen), co))
}

// CheckpointSizes are the element counts of the four GPTQ checkpoint
// tensors of a layer (gptq_checkpoint_sizes).
type CheckpointSizes struct {
	QWeightRows, QWeightCols int // K·bits/32, N
	QZerosRows, QZerosCols   int // G, N·bits/32
	ScalesRows, ScalesCols   int // G, N
	GIdxLen                  int // K
}

// CheckpointTensors are a layer's tensors in GPTQ checkpoint layout (what
// transformers, vLLM and GPTQModel load), row-major; see include/gptq.h for
// the packing.
type CheckpointTensors struct {
	QWeight []int32  // [QWeightRows, QWeightCols], codes packed along K
	QZeros  []int32  // [QZerosRows, QZerosCols], zeros packed along N
	Scales  []uint16 // [ScalesRows, ScalesCols], fp16 bit patterns
	GIdx    []int32  // [GIdxLen]; for ImportQTensor, empty means j / group_size
	// Sizes are the shapes, set by Export. ImportQTensor ignores them.
	Sizes CheckpointSizes
}

// CheckpointSizesFor returns the sizes the checkpoint tensors of a layer
// [outFeatures, inFeatures] with these bits and group size have.
func CheckpointSizesFor(outFeatures, inFeatures, bits, groupSize int) (CheckpointSizes, error) {
	const where = "gptq.CheckpointSizesFor"
	if err := checkInt32s(where, bits, groupSize); err != nil {
		return CheckpointSizes{}, err
	}
	var s c_gptq_checkpoint_sizes
	if err := statusError(c_gptq_checkpoint_sizes_for(int64(outFeatures), int64(inFeatures), int32(bits), int32(groupSize), &s)); err != nil {
		return CheckpointSizes{}, err
	}
	return CheckpointSizes{
		QWeightRows: int(s.qweight_rows), QWeightCols: int(s.qweight_cols),
		QZerosRows: int(s.qzeros_rows), QZerosCols: int(s.qzeros_cols),
		ScalesRows: int(s.scales_rows), ScalesCols: int(s.scales_cols),
		GIdxLen: int(s.g_idx_len),
	}, nil
}

// Export returns the tensor in checkpoint layout. FormatV1 stores zero - 1
// (what readers assume by default) and cannot hold a zero of 0, which
// asymmetric quantization produces: that is an ErrUnsupported error, use
// FormatV2.
func (q *QTensor) Export(format CheckpointFormat) (*CheckpointTensors, error) {
	const where = "gptq.QTensor.Export"
	if err := q.rlock(where); err != nil {
		return nil, err
	}
	defer q.runlock()
	s, err := CheckpointSizesFor(q.info.OutFeatures, q.info.InFeatures, q.info.Bits, q.info.GroupSize)
	if err != nil {
		return nil, err
	}
	c, err := newCCheckpoint(where, s.QWeightRows*s.QWeightCols, s.QZerosRows*s.QZerosCols,
		s.ScalesRows*s.ScalesCols, s.GIdxLen, true)
	if err != nil {
		return nil, err
	}
	defer c.free()
	if err := statusError(c_gptq_qtensor_export(q.ptr, format, c.t)); err != nil {
		return nil, err
	}
	return &CheckpointTensors{
		QWeight: append([]int32(nil), c.qweight...),
		QZeros:  append([]int32(nil), c.qzeros...),
		Scales:  append([]uint16(nil), c.scales...),
		GIdx:    append([]int32(nil), c.gIdx...),
		Sizes:   s,
	}, nil
}

// ImportQTensor builds a QTensor from checkpoint tensors quantized
// elsewhere (an engine loading a checkpoint). t.GIdx may be empty, meaning
// j / groupSize. With FormatV1, zero = stored + 1. The data are copied; the
// library checks the buffer lengths, g_idx and scales.
func ImportQTensor(outFeatures, inFeatures, bits, groupSize int, format CheckpointFormat, t *CheckpointTensors) (*QTensor, error) {
	const where = "gptq.ImportQTensor"
	if err := checkInt32s(where, bits, groupSize); err != nil {
		return nil, err
	}
	var ct *c_gptq_checkpoint_tensors
	if t != nil {
		c, err := newCCheckpoint(where, len(t.QWeight), len(t.QZeros), len(t.Scales), len(t.GIdx), len(t.GIdx) > 0)
		if err != nil {
			return nil, err
		}
		defer c.free()
		copy(c.qweight, t.QWeight)
		copy(c.qzeros, t.QZeros)
		copy(c.scales, t.Scales)
		copy(c.gIdx, t.GIdx)
		ct = c.t
	}
	var p *c_gptq_qtensor
	if err := statusError(c_gptq_qtensor_import(int64(outFeatures), int64(inFeatures), int32(bits), int32(groupSize), format, ct, &p)); err != nil {
		return nil, err
	}
	return newQTensor(p)
}

// checkInt32s checks the bits and group size, which the C API takes as
// int32 (truncating could turn a wrong value into a valid one).
func checkInt32s(where string, bits, groupSize int) error {
	if bits < math.MinInt32 || bits > math.MaxInt32 {
		return goError(ErrInvalidConfig, where, "bits is %d, outside the int32 range", bits)
	}
	if groupSize < math.MinInt32 || groupSize > math.MaxInt32 {
		return goError(ErrInvalidConfig, where, "group size is %d, outside the int32 range", groupSize)
	}
	return nil
}
