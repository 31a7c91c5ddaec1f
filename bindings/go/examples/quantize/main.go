// Command quantize quantizes one synthetic linear layer with libgptq from
// Go, compares GPTQ with round-to-nearest (RTN) on held-out activations,
// and round-trips the result through the GPTQ checkpoint layout.
//
// The data come from fixed seeds: Gaussian weights with rare outliers, and
// activations whose channels are correlated through a low-rank mixing, with
// a log-normal per-channel scale and a few outlier channels (the structure
// that makes GPTQ beat RTN on real LLM layers).
//
//	go run ./examples/quantize [-out N] [-in N] [-tokens N] [-batches N]
//	    [-heldout N] [-bits B] [-group G] [-act-order] [-asym] [-v]
//
// RTN is computed with the same library: a context whose Hessian is the
// identity (imported with ImportHessian) feeds no error between columns,
// so GPTQ on it is exactly round-to-nearest with the same groups.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"time"

	"example.invalid/libgptq/bindings/go/gptq"
)

func main() {
	out := flag.Int("out", 512, "output features (rows of W)")
	in := flag.Int("in", 1024, "input features (columns of W)")
	tokens := flag.Int("tokens", 2048, "calibration tokens")
	batches := flag.Int("batches", 4, "AddBatch calls the calibration tokens are split into")
	heldout := flag.Int("heldout", 256, "held-out tokens for measuring the output error")
	bits := flag.Int("bits", 4, "bits per weight (2..8)")
	group := flag.Int("group", 128, "group size (-1: one group per row)")
	actOrder := flag.Bool("act-order", false, "quantize columns by descending Hessian diagonal")
	asym := flag.Bool("asym", false, "asymmetric quantization")
	verbose := flag.Bool("v", false, "show the library's debug log")
	flag.Parse()
	if err := run(*out, *in, *tokens, *batches, *heldout, *bits, *group, *actOrder, *asym, *verbose); err != nil {
		// Every library failure is a *gptq.Error with the library's message.
		var e *gptq.Error
		if errors.As(err, &e) {
			fmt.Fprintf(os.Stderr, "quantize: %s (status %d)\n", e, e.Status)
		} else {
			fmt.Fprintf(os.Stderr, "quantize: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(out, in, tokens, batches, heldout, bits, group int, actOrder, asym, verbose bool) error {
	fmt.Printf("libgptq %s, layer [%d, %d], %d-bit, group %d, act-order %v, sym %v\n",
		gptq.Version(), out, in, bits, group, actOrder, !asym)
	if tokens < 1 || batches < 1 || heldout < 1 || in < 1 {
		return errors.New("-tokens, -batches, -heldout and -in must be >= 1")
	}
	w := weights(out, in)
	calib, test := activations(tokens, heldout, in)

	cfg := gptq.DefaultConfig()
	cfg.Bits, cfg.GroupSize, cfg.ActOrder, cfg.Sym = bits, group, actOrder, !asym
	cfg.Log = func(level gptq.LogLevel, msg string) { fmt.Printf("  [%s] %s\n", level, msg) }
	if verbose {
		cfg.LogLevel = gptq.LogDebug
	}
	lastPct := -1
	cfg.Progress = func(done, total int64) bool {
		if pct := int(100 * done / total); pct/25 > lastPct/25 {
			fmt.Printf("  progress: %d of %d columns\n", done, total)
			lastPct = pct
		}
		return true // false would cancel with gptq.ErrCancelled
	}

	ctx, err := gptq.NewContext(out, in, &cfg)
	if err != nil {
		return err
	}
	defer ctx.Close()
	per := (tokens + batches - 1) / batches
	for r0 := 0; r0 < tokens; r0 += per {
		rows := min(per, tokens-r0)
		if err := ctx.AddBatch(calib[r0*in:(r0+rows)*in], rows, int64(rows)); err != nil {
			return err
		}
	}
	fmt.Printf("calibration: %d tokens in %d batches, %d samples\n", tokens, batches, ctx.Samples())

	q, stats, err := ctx.Quantize(w)
	if err != nil {
		return err
	}
	defer q.Close()
	fmt.Printf("GPTQ: loss %.6g, damp %.4g (%d retries), %d dead columns, RTN fallback %v, %v on %s\n",
		stats.Loss, stats.DampPercentUsed, stats.DampRetries, stats.DeadColumns, stats.FellBackToRTN,
		stats.Elapsed.Round(time.Millisecond), stats.Backend)

	// Round-to-nearest with the same library: identity Hessian.
	rtnCfg := gptq.DefaultConfig()
	rtnCfg.Bits, rtnCfg.GroupSize, rtnCfg.Sym = bits, group, !asym
	rtnCtx, err := gptq.NewContext(out, in, &rtnCfg)
	if err != nil {
		return err
	}
	defer rtnCtx.Close()
	eye := make([]float64, in*in)
	for j := 0; j < in; j++ {
		eye[j*in+j] = 1
	}
	if err := rtnCtx.ImportHessian(eye, 1); err != nil {
		return err
	}
	rtn, _, err := rtnCtx.Quantize(w)
	if err != nil {
		return err
	}
	defer rtn.Close()

	// Output error on held-out tokens, through the library's matmul.
	ref := matmulFloat(test, w, heldout, out, in)
	yq, err := q.Matmul(test, heldout, nil)
	if err != nil {
		return err
	}
	yr, err := rtn.Matmul(test, heldout, nil)
	if err != nil {
		return err
	}
	eq, er := relErr(yq, ref), relErr(yr, ref)
	fmt.Printf("held-out output error ‖XWᵀ−XQᵀ‖²/‖XWᵀ‖²: GPTQ %.4g, RTN %.4g (GPTQ/RTN %.3f)\n", eq, er, eq/er)

	// Checkpoint layout and back.
	format := gptq.FormatV1
	if asym {
		format = gptq.FormatV2 // v1 cannot hold an asymmetric zero of 0
	}
	ck, err := q.Export(format)
	if err != nil {
		return err
	}
	s := ck.Sizes
	fmt.Printf("checkpoint (format v%d): qweight int32 [%d, %d], qzeros int32 [%d, %d], scales fp16 [%d, %d], g_idx int32 [%d]\n",
		format, s.QWeightRows, s.QWeightCols, s.QZerosRows, s.QZerosCols, s.ScalesRows, s.ScalesCols, s.GIdxLen)
	info := q.Info()
	back, err := gptq.ImportQTensor(info.OutFeatures, info.InFeatures, info.Bits, info.GroupSize, format, ck)
	if err != nil {
		return err
	}
	defer back.Close()
	yb, err := back.Matmul(test, heldout, nil)
	if err != nil {
		return err
	}
	same := true
	for i := range yb {
		same = same && yb[i] == yq[i]
	}
	fmt.Printf("re-imported tensor gives the same matmul output: %v\n", same)
	if !same {
		return errors.New("the checkpoint round trip changed the tensor")
	}
	return nil
}

func weights(out, in int) []float32 {
	r := rand.New(rand.NewSource(1))
	w := make([]float32, out*in)
	for i := range w {
		v := 0.02 * r.NormFloat64()
		if r.Intn(1000) == 0 {
			v *= 5 + 5*r.Float64()
		}
		w[i] = float32(v)
	}
	return w
}

// activations returns calibration and held-out tokens from one distribution.
func activations(tokens, heldout, in int) (calib, test []float32) {
	r := rand.New(rand.NewSource(2))
	rank := max(8, min(64, in/16))
	mix := make([]float64, rank*in)
	for i := range mix {
		mix[i] = r.NormFloat64() / math.Sqrt(float64(rank))
	}
	scale := make([]float64, in)
	offset := make([]float64, in)
	for j := range scale {
		scale[j] = math.Exp(0.6 * r.NormFloat64())
		offset[j] = 0.2 * r.NormFloat64()
		if r.Intn(200) == 0 { // outlier channel
			scale[j] *= 20 + 30*r.Float64()
			offset[j] = math.Abs(offset[j]) + 1
		}
	}
	gen := func(n int) []float32 {
		x := make([]float32, n*in)
		z := make([]float64, rank)
		for t := 0; t < n; t++ {
			for a := range z {
				z[a] = r.NormFloat64()
			}
			tokenScale := math.Exp(0.2 * r.NormFloat64())
			for j := 0; j < in; j++ {
				v := r.NormFloat64()
				for a, za := range z {
					v += za * mix[a*in+j]
				}
				x[t*in+j] = float32(tokenScale * scale[j] * (v/math.Sqrt2 + offset[j]))
			}
		}
		return x
	}
	return gen(tokens), gen(heldout)
}

func matmulFloat(x, w []float32, rows, out, in int) []float64 {
	y := make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		for n := 0; n < out; n++ {
			var s float64
			for k := 0; k < in; k++ {
				s += float64(x[r*in+k]) * float64(w[n*in+k])
			}
			y[r*out+n] = s
		}
	}
	return y
}

func relErr(y []float32, ref []float64) float64 {
	var num, den float64
	for i := range y {
		d := float64(y[i]) - ref[i]
		num += d * d
		den += ref[i] * ref[i]
	}
	return num / den
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}
