// Hand-written test helpers for the idiomatic layer.

package gptq

import (
	"errors"
	"math"
	"math/rand"
	"testing"
	"unsafe"
)

// layerData makes deterministic calibration activations x [rows, in] with
// correlated channels, per-channel scales and a few dead (all-zero)
// columns, and weights w [out, in] with rare outliers.
func layerData(seed int64, out, in, rows int, dead ...int) (x, w []float32) {
	r := rand.New(rand.NewSource(seed))
	const rank = 8
	mix := make([]float64, rank*in)
	for i := range mix {
		mix[i] = r.NormFloat64()
	}
	scale := make([]float64, in)
	for j := range scale {
		scale[j] = math.Exp(0.5 * r.NormFloat64())
	}
	x = make([]float32, rows*in)
	for t := 0; t < rows; t++ {
		var z [rank]float64
		for a := range z {
			z[a] = r.NormFloat64()
		}
		for j := 0; j < in; j++ {
			v := r.NormFloat64()
			for a := 0; a < rank; a++ {
				v += z[a] * mix[a*in+j] / math.Sqrt(rank)
			}
			x[t*in+j] = float32(v * scale[j])
		}
		for _, j := range dead {
			x[t*in+j] = 0
		}
	}
	w = make([]float32, out*in)
	for i := range w {
		v := 0.02 * r.NormFloat64()
		if r.Intn(500) == 0 {
			v *= 8
		}
		w[i] = float32(v)
	}
	return x, w
}

// lowLevel is the same quantization driven through the generated c_gptq_*
// layer, as an independent reference for the idiomatic one.
type lowLevel struct {
	codes   []uint8
	deq     []float32
	stats   c_gptq_quant_stats
	info    c_gptq_qtensor_info
	qweight []int32
	qzeros  []int32
	scales  []uint16
	gIdx    []int32
}

// lowLevelQuantize creates a context with cfg, adds x in batches of
// batchRows rows (samples = rows of the batch), quantizes w and exports in
// format (0: no export).
func lowLevelQuantize(t *testing.T, out, in int, cfg *c_gptq_config, x []float32, batchRows int, w []float32, format CheckpointFormat) lowLevel {
	t.Helper()
	var ctx *c_gptq_ctx
	if st, msg := c_gptq_ctx_create(int64(out), int64(in), cfg, &ctx); st != OK {
		t.Fatalf("gptq_ctx_create: %v %s", st, msg)
	}
	defer c_gptq_ctx_destroy(ctx)
	rows := len(x) / in
	for r0 := 0; r0 < rows; r0 += batchRows {
		n := batchRows
		if r0+n > rows {
			n = rows - r0
		}
		if st, msg := c_gptq_add_batch(ctx, unsafe.Pointer(&x[r0*in]), DtypeF32, int64(n), int64(in), int64(n)); st != OK {
			t.Fatalf("gptq_add_batch: %v %s", st, msg)
		}
	}
	var q *c_gptq_qtensor
	var ll lowLevel
	ll.stats.struct_size = c_sizeof_gptq_quant_stats
	if st, msg := c_gptq_quantize(ctx, unsafe.Pointer(&w[0]), DtypeF32, int64(out), int64(in), &q, &ll.stats); st != OK {
		t.Fatalf("gptq_quantize: %v %s", st, msg)
	}
	defer c_gptq_qtensor_destroy(q)
	if st, msg := c_gptq_qtensor_get_info(q, &ll.info); st != OK {
		t.Fatalf("gptq_qtensor_get_info: %v %s", st, msg)
	}
	ll.codes = make([]uint8, out*in)
	if st, msg := c_gptq_qtensor_codes(q, &ll.codes[0], int64(len(ll.codes))); st != OK {
		t.Fatalf("gptq_qtensor_codes: %v %s", st, msg)
	}
	ll.deq = make([]float32, out*in)
	if st, msg := c_gptq_qtensor_dequantize(q, &ll.deq[0], int64(len(ll.deq))); st != OK {
		t.Fatalf("gptq_qtensor_dequantize: %v %s", st, msg)
	}
	if format != 0 {
		var s c_gptq_checkpoint_sizes
		if st, msg := c_gptq_checkpoint_sizes_for(int64(out), int64(in), int32(ll.info.bits), int32(ll.info.group_size), &s); st != OK {
			t.Fatalf("gptq_checkpoint_sizes_for: %v %s", st, msg)
		}
		c, err := newCCheckpoint("test", int(s.qweight_rows*s.qweight_cols), int(s.qzeros_rows*s.qzeros_cols),
			int(s.scales_rows*s.scales_cols), int(s.g_idx_len), true)
		if err != nil {
			t.Fatal(err)
		}
		defer c.free()
		if st, msg := c_gptq_qtensor_export(q, format, c.t); st != OK {
			t.Fatalf("gptq_qtensor_export: %v %s", st, msg)
		}
		ll.qweight = append([]int32(nil), c.qweight...)
		ll.qzeros = append([]int32(nil), c.qzeros...)
		ll.scales = append([]uint16(nil), c.scales...)
		ll.gIdx = append([]int32(nil), c.gIdx...)
	}
	return ll
}

// idiomaticQuantize is lowLevelQuantize through the Go API.
func idiomaticQuantize(t *testing.T, out, in int, cfg *Config, x []float32, batchRows int, w []float32) (*QTensor, QuantStats) {
	t.Helper()
	ctx, err := NewContext(out, in, cfg)
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	defer ctx.Close()
	rows := len(x) / in
	for r0 := 0; r0 < rows; r0 += batchRows {
		n := batchRows
		if r0+n > rows {
			n = rows - r0
		}
		if err := ctx.AddBatch(x[r0*in:(r0+n)*in], n, int64(n)); err != nil {
			t.Fatalf("AddBatch: %v", err)
		}
	}
	q, stats, err := ctx.Quantize(w)
	if err != nil {
		t.Fatalf("Quantize: %v", err)
	}
	return q, stats
}

func sameBits32(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

func sameSlice[T comparable](a, b []T) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if a[i] != b[i] {
			return i, false
		}
	}
	return 0, true
}

// asError checks that err is an *Error of the given status (also through
// errors.Is) and returns it.
func asError(t *testing.T, err error, want Status) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *gptq.Error", err, err)
	}
	if e.Status != want || !errors.Is(err, want) {
		t.Fatalf("error %v has status %v, want %v", err, e.Status, want)
	}
	if e.Message == "" {
		t.Fatalf("error %v has no message", err)
	}
	return e
}

// f16FromExact encodes a float32 that binary16 represents exactly (normal
// or zero); it panics otherwise.
func f16FromExact(f float32) uint16 {
	if f == 0 {
		return uint16(math.Float32bits(f) >> 16 & 0x8000)
	}
	b := math.Float32bits(f)
	sign := uint16(b >> 16 & 0x8000)
	exp := int(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	if exp < 1 || exp > 30 || mant&0x1fff != 0 {
		panic("not exactly representable in binary16")
	}
	return sign | uint16(exp)<<10 | uint16(mant>>13)
}

func f16ToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h >> 10 & 0x1f)
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		return float32(math.Copysign(float64(mant)*math.Pow(2, -24), float64(math.Float32frombits(sign|0x3f800000))))
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// exactSmall rounds values to multiples of 1/64 in a range where both
// binary16 and bfloat16 hold them exactly (at most 8 significant bits).
func exactSmall(v []float32) {
	for i := range v {
		q := math.Round(float64(v[i]) * 64)
		q = math.Max(-255, math.Min(255, q))
		v[i] = float32(q / 64)
	}
}
