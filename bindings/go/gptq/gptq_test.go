// Hand-written tests of the idiomatic layer: results against the C library
// driven directly, round trips, matmul, lifetime.

package gptq

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

func TestLibraryVersion(t *testing.T) {
	n := LoadedVersionNumber()
	if want := fmt.Sprintf("%d.%d.%d", n/10000, n/100%100, n%100); Version() != want {
		t.Fatalf("Version() = %q, want %q", Version(), want)
	}
	if n/10000 != VersionMajor || n < VersionNumber {
		t.Fatalf("loaded library %d does not serve header %d", n, VersionNumber)
	}
}

func TestDefaultConfigIsTheLibrarys(t *testing.T) {
	var c c_gptq_config
	c_gptq_config_default(&c)
	d := DefaultConfig()
	got := fmt.Sprint(d.Bits, d.GroupSize, d.Sym, d.ActOrder, d.StaticGroups, d.BlockSize, d.DampPercent,
		d.DampIncrement, d.MSE, d.MSENorm, d.MSEGrid, d.MSEMaxShrink, d.Backend, d.Precision, d.LogLevel, d.NumThreads,
		d.ActGroupAware, d.Grid)
	want := fmt.Sprint(int(c.bits), int(c.group_size), c.sym != 0, c.act_order != 0, c.static_groups != 0,
		int(c.block_size), float32(c.damp_percent), float32(c.damp_increment), c.mse != 0, float32(c.mse_norm),
		int(c.mse_grid), float32(c.mse_max_shrink), Backend(c.backend), Precision(c.precision),
		LogLevel(c.log_level), int(c.num_threads), c.act_group_aware != 0, Grid(c.grid))
	if got != want {
		t.Fatalf("DefaultConfig() = %s, gptq_config_default = %s", got, want)
	}
	if d.Progress != nil || d.Log != nil {
		t.Fatal("DefaultConfig has callbacks")
	}
	// And toC of the defaults is gptq_config_default, byte for byte.
	back, err := d.toC("test")
	if err != nil || back != c {
		t.Fatalf("DefaultConfig().toC() = %+v, %v; want %+v", back, err, c)
	}
}

// quantCase is one configuration, set both ways: on a Config and on the C
// struct directly (independently of Config.toC).
type quantCase struct {
	name string
	set  func(*Config)
	setC func(*c_gptq_config)
	fmt  CheckpointFormat
}

var quantCases = []quantCase{
	{"4bit-g32-sym", func(c *Config) { c.Bits, c.GroupSize = 4, 32 },
		func(c *c_gptq_config) { c.bits, c.group_size = 4, 32 }, FormatV1},
	{"3bit-g64-asym-actorder", func(c *Config) { c.Bits, c.GroupSize, c.Sym, c.ActOrder = 3, 64, false, true },
		func(c *c_gptq_config) { c.bits, c.group_size, c.sym, c.act_order = 3, 64, 0, 1 }, FormatV2},
	{"8bit-nogroup-block48", func(c *Config) { c.Bits, c.GroupSize, c.BlockSize = 8, -1, 48 },
		func(c *c_gptq_config) { c.bits, c.group_size, c.block_size = 8, -1, 48 }, FormatV1},
	{"2bit-g16-static-actorder-mse", func(c *Config) {
		c.Bits, c.GroupSize, c.ActOrder, c.StaticGroups, c.MSE, c.MSEGrid = 2, 16, true, true, true, 20
	}, func(c *c_gptq_config) {
		c.bits, c.group_size, c.act_order, c.static_groups, c.mse, c.mse_grid = 2, 16, 1, 1, 1, 20
	}, FormatV2},
	{"4bit-g128-f64-damp", func(c *Config) { c.Precision, c.DampPercent, c.NumThreads = PrecisionF64, 0.1, 3 },
		func(c *c_gptq_config) {
			c.precision, c.damp_percent, c.num_threads = c_gptq_precision(PrecisionF64), 0.1, 3
		}, FormatV1},
}

// TestQuantizeMatchesLowLevel: the Go API gives bit for bit what the C
// library gives when driven directly: codes, dequantized weights, stats,
// info and the exported checkpoint tensors.
func TestQuantizeMatchesLowLevel(t *testing.T) {
	const out, in, rows = 64, 256, 300
	x, w := layerData(1, out, in, rows, 5, 77)
	for _, tc := range quantCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.set(&cfg)
			q, stats := idiomaticQuantize(t, out, in, &cfg, x, 64, w)
			defer q.Close()

			var cc c_gptq_config
			c_gptq_config_default(&cc)
			tc.setC(&cc)
			ll := lowLevelQuantize(t, out, in, &cc, x, 64, w, tc.fmt)

			codes, err := q.Codes()
			if err != nil {
				t.Fatal(err)
			}
			if i, ok := sameSlice(codes, ll.codes); !ok {
				t.Fatalf("codes differ at %d", i)
			}
			deq, err := q.Dequantize()
			if err != nil {
				t.Fatal(err)
			}
			if i, ok := sameBits32(deq, ll.deq); !ok {
				t.Fatalf("dequantized weights differ at %d", i)
			}
			if stats.Loss != float64(ll.stats.loss) || stats.DeadColumns != int64(ll.stats.dead_columns) ||
				stats.DampPercentUsed != float64(ll.stats.damp_percent_used) ||
				stats.DampRetries != int(ll.stats.damp_retries) || stats.FellBackToRTN != (ll.stats.fell_back_to_rtn != 0) ||
				stats.Backend != Backend(ll.stats.backend) {
				t.Fatalf("stats %+v differ from the library's %+v", stats, ll.stats)
			}
			if stats.DeadColumns != 2 || stats.Backend != BackendCPU || stats.Loss <= 0 || stats.Elapsed <= 0 {
				t.Fatalf("implausible stats %+v", stats)
			}
			info := q.Info()
			wantInfo := QTensorInfo{int(ll.info.out_features), int(ll.info.in_features), int(ll.info.bits),
				int(ll.info.group_size), int(ll.info.groups), ll.info.act_order != 0}
			if info != wantInfo || info.OutFeatures != out || info.InFeatures != in || info.Bits != cfg.Bits {
				t.Fatalf("Info() = %+v, library %+v", info, wantInfo)
			}
			ck, err := q.Export(tc.fmt)
			if err != nil {
				t.Fatal(err)
			}
			for name, pair := range map[string][2][]int32{
				"qweight": {ck.QWeight, ll.qweight}, "qzeros": {ck.QZeros, ll.qzeros}, "g_idx": {ck.GIdx, ll.gIdx}} {
				if i, ok := sameSlice(pair[0], pair[1]); !ok {
					t.Fatalf("%s differs at %d", name, i)
				}
			}
			if i, ok := sameSlice(ck.Scales, ll.scales); !ok {
				t.Fatalf("scales differ at %d", i)
			}
			s := ck.Sizes
			if len(ck.QWeight) != s.QWeightRows*s.QWeightCols || s.QWeightCols != out || s.QWeightRows != in*cfg.Bits/32 ||
				len(ck.Scales) != s.ScalesRows*s.ScalesCols || s.ScalesRows != info.Groups || len(ck.GIdx) != in {
				t.Fatalf("checkpoint sizes %+v do not fit the tensors", s)
			}
		})
	}
}

// TestQuantizeIsDeterministic: the same input quantized twice through the
// Go API (once with callbacks installed) gives the same codes.
func TestQuantizeIsDeterministic(t *testing.T) {
	const out, in, rows = 32, 128, 200
	x, w := layerData(2, out, in, rows)
	cfg := DefaultConfig()
	cfg.GroupSize = 32
	q1, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
	defer q1.Close()
	cfg.Progress = func(done, total int64) bool { return true }
	cfg.Log = func(LogLevel, string) {}
	cfg.LogLevel = LogDebug
	q2, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
	defer q2.Close()
	c1, _ := q1.Codes()
	c2, _ := q2.Codes()
	if i, ok := sameSlice(c1, c2); !ok {
		t.Fatalf("codes differ at %d", i)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	const out, in, rows = 64, 128, 256
	x, w := layerData(3, out, in, rows)
	for _, tc := range quantCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.set(&cfg)
			q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
			defer q.Close()
			ck, err := q.Export(tc.fmt)
			if err != nil {
				t.Fatal(err)
			}
			info := q.Info()
			back, err := ImportQTensor(out, in, info.Bits, info.GroupSize, tc.fmt, ck)
			if err != nil {
				t.Fatal(err)
			}
			defer back.Close()
			if back.Info() != info {
				t.Fatalf("imported info %+v, original %+v", back.Info(), info)
			}
			c1, _ := q.Codes()
			c2, _ := back.Codes()
			if i, ok := sameSlice(c1, c2); !ok {
				t.Fatalf("codes differ at %d", i)
			}
			d1, _ := q.Dequantize()
			d2, _ := back.Dequantize()
			if i, ok := sameBits32(d1, d2); !ok {
				t.Fatalf("dequantized weights differ at %d", i)
			}
			again, err := back.Export(tc.fmt)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(again) != fmt.Sprint(ck) {
				t.Fatal("re-export differs")
			}
			// Without g_idx the library assumes j / group_size: the same
			// tensor unless act-order reordered the groups.
			noGIdx := *ck
			noGIdx.GIdx = nil
			nat, err := ImportQTensor(out, in, info.Bits, info.GroupSize, tc.fmt, &noGIdx)
			if err != nil {
				t.Fatal(err)
			}
			defer nat.Close()
			d3, _ := nat.Dequantize()
			if _, same := sameBits32(d1, d3); same == info.ActOrder {
				t.Fatalf("import without g_idx: same result %v with act-order %v", same, info.ActOrder)
			}
		})
	}
}

// matmulRef is x·Wᵀ (+ bias) in float64, and Σ|x·w| (+ |bias|) per output.
func matmulRef(x, w, bias []float32, rows, out, in int) (ref, mag []float64) {
	ref = make([]float64, rows*out)
	mag = make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		for n := 0; n < out; n++ {
			var s, m float64
			for k := 0; k < in; k++ {
				p := float64(x[r*in+k]) * float64(w[n*in+k])
				s += p
				m += math.Abs(p)
			}
			if bias != nil {
				s += float64(bias[n])
				m += math.Abs(float64(bias[n]))
			}
			ref[r*out+n], mag[r*out+n] = s, m
		}
	}
	return ref, mag
}

func TestMatmulMatchesDequantized(t *testing.T) {
	const out, in, rows = 64, 128, 256
	x, w := layerData(4, out, in, rows)
	for _, actOrder := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.GroupSize = 32
		cfg.ActOrder = actOrder
		q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
		defer q.Close()
		deq, err := q.Dequantize()
		if err != nil {
			t.Fatal(err)
		}
		bias := make([]float32, out)
		for i := range bias {
			bias[i] = float32(i%5) - 2
		}
		for _, m := range []int{1, 7, 40} { // SIMD kernels up to 16 rows, sgemm beyond
			xs, _ := layerData(int64(5+m), 1, in, m)
			for _, b := range [][]float32{nil, bias} {
				y, err := q.Matmul(xs, m, b)
				if err != nil {
					t.Fatal(err)
				}
				if len(y) != m*out {
					t.Fatalf("len(y) = %d", len(y))
				}
				ref, mag := matmulRef(xs, deq, b, m, out, in)
				for i := range y {
					if d := math.Abs(float64(y[i]) - ref[i]); d > 1e-5*mag[i] {
						t.Fatalf("act-order %v, %d rows: y[%d] = %g, dequantize-then-multiply gives %g",
							actOrder, m, i, y[i], ref[i])
					}
				}
				y2 := make([]float32, m*out+3)
				if err := q.MatmulInto(y2, xs, m, b, nil); err != nil {
					t.Fatal(err)
				}
				if i, ok := sameBits32(y, y2[:m*out]); !ok {
					t.Fatalf("MatmulInto differs from Matmul at %d", i)
				}
				// Explicit default options, one thread: the same numbers.
				opts := DefaultMatmulOptions()
				opts.NumThreads = 1
				y3, err := q.MatmulWith(xs, m, b, &opts)
				if err != nil {
					t.Fatal(err)
				}
				for i := range y {
					if d := math.Abs(float64(y3[i] - y[i])); d > 1e-5*mag[i] {
						t.Fatalf("MatmulWith(1 thread) y[%d] = %g, Matmul %g", i, y3[i], y[i])
					}
				}
				// int8 activations: about 1% relative L2 error, no more.
				opts.Int8Activations = true
				y4, err := q.MatmulWith(xs, m, b, &opts)
				if err != nil {
					t.Fatal(err)
				}
				var num, den float64
				for i := range y4 {
					num += (float64(y4[i]) - ref[i]) * (float64(y4[i]) - ref[i])
					den += ref[i] * ref[i]
				}
				if rel := math.Sqrt(num / den); rel > 0.03 {
					t.Fatalf("int8 activations: relative L2 error %.4f", rel)
				}
			}
		}
	}
	if d := DefaultMatmulOptions(); d.Int8Activations || d.NumThreads != 0 {
		t.Fatalf("DefaultMatmulOptions() = %+v", d)
	}
}

func TestMatmulHalf(t *testing.T) {
	const out, in, rows, m = 64, 128, 256, 7
	x, w := layerData(4, out, in, rows)
	cfg := DefaultConfig()
	cfg.GroupSize = 64
	q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
	defer q.Close()
	// x exactly representable in both formats; the result within the final
	// rounding of the float32 result.
	xs, _ := layerData(5, 1, in, m)
	exactSmall(xs)
	yf, err := q.Matmul(xs, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	xh := make([]uint16, len(xs))
	xb := make([]uint16, len(xs))
	for i, v := range xs {
		xh[i] = f16FromExact(v)
		xb[i] = uint16(math.Float32bits(v) >> 16)
	}
	yh, err := q.MatmulF16(xh, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	yb, err := q.MatmulBF16(xb, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	var scale float64
	for _, v := range yf {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range yf {
		if d := math.Abs(float64(f16ToFloat(yh[i]) - yf[i])); d > math.Abs(float64(yf[i]))/1024+scale*1e-5 {
			t.Fatalf("MatmulF16 y[%d] = %g, float32 %g", i, f16ToFloat(yh[i]), yf[i])
		}
		bv := math.Float32frombits(uint32(yb[i]) << 16)
		if d := math.Abs(float64(bv - yf[i])); d > math.Abs(float64(yf[i]))/128+scale*1e-5 {
			t.Fatalf("MatmulBF16 y[%d] = %g, float32 %g", i, bv, yf[i])
		}
	}
}

// TestHalfInputsMatchFloat: F16 / BF16 activations and weights holding the
// same values as float32 ones give the same Hessian and the same codes.
func TestHalfInputsMatchFloat(t *testing.T) {
	const out, in, rows = 32, 64, 100
	x, w := layerData(6, out, in, rows)
	exactSmall(x)
	for i := range w {
		w[i] *= 8 // into exactSmall's range with enough distinct values
	}
	exactSmall(w)
	xh := make([]uint16, len(x))
	xb := make([]uint16, len(x))
	for i, v := range x {
		xh[i] = f16FromExact(v)
		xb[i] = uint16(math.Float32bits(v) >> 16)
	}
	wb := make([]uint16, len(w))
	wh := make([]uint16, len(w))
	for i, v := range w {
		wb[i] = uint16(math.Float32bits(v) >> 16)
		wh[i] = f16FromExact(v)
	}
	cfg := DefaultConfig()
	cfg.GroupSize = 32
	run := func(add func(*Context) error, quant func(*Context) (*QTensor, QuantStats, error)) ([]float64, []uint8) {
		ctx, err := NewContext(out, in, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.Close()
		if err := add(ctx); err != nil {
			t.Fatal(err)
		}
		h, n, err := ctx.ExportHessian()
		if err != nil || n != rows {
			t.Fatalf("ExportHessian: %d samples, %v", n, err)
		}
		q, _, err := quant(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		codes, _ := q.Codes()
		return h, codes
	}
	h32, c32 := run(func(c *Context) error { return c.AddBatch(x, rows, rows) },
		func(c *Context) (*QTensor, QuantStats, error) { return c.Quantize(w) })
	h16, c16 := run(func(c *Context) error { return c.AddBatchF16(xh, rows, rows) },
		func(c *Context) (*QTensor, QuantStats, error) { return c.QuantizeF16(wh) })
	hb, cb := run(func(c *Context) error { return c.AddBatchBF16(xb, rows, rows) },
		func(c *Context) (*QTensor, QuantStats, error) { return c.QuantizeBF16(wb) })
	if _, ok := sameSlice(h32, h16); !ok {
		t.Error("F16 Hessian differs")
	}
	if _, ok := sameSlice(h32, hb); !ok {
		t.Error("BF16 Hessian differs")
	}
	if _, ok := sameSlice(c32, c16); !ok {
		t.Error("F16 codes differ")
	}
	if _, ok := sameSlice(c32, cb); !ok {
		t.Error("BF16 codes differ")
	}
}

// TestMergeAndHessianTransfer: sharded calibration merged equals one
// context that saw everything; an exported Hessian imported elsewhere
// quantizes identically.
func TestMergeAndHessianTransfer(t *testing.T) {
	const out, in, rows = 32, 64, 120
	x, w := layerData(7, out, in, rows)
	cfg := DefaultConfig()
	cfg.Precision = PrecisionF64
	cfg.GroupSize = 32
	newCtx := func() *Context {
		c, err := NewContext(out, in, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	all, a, b := newCtx(), newCtx(), newCtx()
	defer all.Close()
	defer a.Close()
	defer b.Close()
	half := rows / 3 * in
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(all.AddBatch(x[:half], half/in, 2))
	must(all.AddBatch(x[half:], rows-half/in, 5))
	must(a.AddBatch(x[:half], half/in, 2))
	must(b.AddBatch(x[half:], rows-half/in, 5))
	must(a.Merge(b))
	if a.Samples() != 7 || b.Samples() != 5 {
		t.Fatalf("samples after merge: %d, %d", a.Samples(), b.Samples())
	}
	hAll, _, err := all.ExportHessian()
	must(err)
	hA, _, err := a.ExportHessian()
	must(err)
	for i := range hAll {
		if math.Abs(hAll[i]-hA[i]) > 1e-12*(math.Abs(hAll[i])+1) {
			t.Fatalf("merged H[%d] = %g, all-in-one %g", i, hA[i], hAll[i])
		}
	}
	// Opposite merges from two goroutines must not deadlock.
	c1, c2 := newCtx(), newCtx()
	defer c1.Close()
	defer c2.Close()
	must(c1.AddBatch(x[:in], 1, 1))
	must(c2.AddBatch(x[in:2*in], 1, 1))
	done := make(chan error, 2)
	for i := 0; i < 20; i++ { // the sample counts grow ~2.6x per round
		go func() { done <- c1.Merge(c2) }()
		go func() { done <- c2.Merge(c1) }()
		must(<-done)
		must(<-done)
	}

	fresh := newCtx()
	defer fresh.Close()
	must(fresh.ImportHessian(hAll, 7))
	h2, n2, err := fresh.ExportHessian()
	must(err)
	if n2 != 7 {
		t.Fatalf("imported samples %d", n2)
	}
	if i, ok := sameSlice(hAll, h2); !ok {
		t.Fatalf("imported Hessian differs at %d", i)
	}
	q1, _, err := all.Quantize(w)
	must(err)
	defer q1.Close()
	q2, _, err := fresh.Quantize(w)
	must(err)
	defer q2.Close()
	k1, _ := q1.Codes()
	k2, _ := q2.Codes()
	if i, ok := sameSlice(k1, k2); !ok {
		t.Fatalf("codes from the imported Hessian differ at %d", i)
	}
}

func TestCloseAndLifetime(t *testing.T) {
	const out, in = 32, 64
	x, w := layerData(8, out, in, 40)
	ctx, err := NewContext(out, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.OutFeatures() != out || ctx.InFeatures() != in || ctx.Samples() != 0 {
		t.Fatalf("new context: %d x %d, %d samples", ctx.OutFeatures(), ctx.InFeatures(), ctx.Samples())
	}
	if err := ctx.AddBatch(x, 40, 3); err != nil {
		t.Fatal(err)
	}
	if ctx.Samples() != 3 {
		t.Fatalf("Samples() = %d", ctx.Samples())
	}
	q, _, err := ctx.Quantize(w)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := q.Dequantize()
	for i := 0; i < 2; i++ {
		if err := ctx.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if ctx.Samples() != -1 {
		t.Fatal("Samples() of a closed context is not -1")
	}
	asError(t, ctx.AddBatch(x, 40, 1), ErrInvalidState)
	_, _, err = ctx.Quantize(w)
	asError(t, err, ErrInvalidState)
	// The tensor outlives its context.
	after, err := q.Dequantize()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sameBits32(before, after); !ok {
		t.Fatal("tensor changed when its context was closed")
	}
	info := q.Info()
	q.Close()
	q.Close()
	if q.Info() != info {
		t.Fatal("Info() changed on Close")
	}
	_, err = q.Matmul(x[:in], 1, nil)
	asError(t, err, ErrInvalidState)
	_, err = q.Export(FormatV1)
	asError(t, err, ErrInvalidState)
}

// TestFinalizers: objects dropped without Close (callbacks included) are
// freed by finalizers without crashing.
func TestFinalizers(t *testing.T) {
	const out, in = 32, 64
	x, w := layerData(9, out, in, 16)
	for i := 0; i < 50; i++ {
		cfg := DefaultConfig()
		cfg.Log = func(LogLevel, string) {}
		cfg.Progress = func(int64, int64) bool { return true }
		ctx, err := NewContext(out, in, &cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctx.AddBatch(x, 16, 16); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ctx.Quantize(w); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
}
