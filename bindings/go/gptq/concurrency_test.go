// Hand-written tests of concurrent use.

package gptq

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentMatmul: many goroutines multiply with one QTensor at once
// (and read it in other ways); every result equals the serial one bit for
// bit.
func TestConcurrentMatmul(t *testing.T) {
	const out, in, rows = 64, 128, 128
	x, w := layerData(12, out, in, rows)
	cfg := DefaultConfig()
	cfg.GroupSize = 32
	q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
	defer q.Close()

	const goroutines, iters, m = 16, 25, 3
	inputs := make([][]float32, goroutines)
	want := make([][]float32, goroutines)
	for g := range inputs {
		inputs[g], _ = layerData(int64(100+g), 1, in, m)
		y, err := q.Matmul(inputs[g], m, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[g] = y
	}
	deq, _ := q.Dequantize()
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				y, err := q.Matmul(inputs[g], m, nil)
				if err != nil {
					errs <- err.Error()
					return
				}
				if j, ok := sameBits32(y, want[g]); !ok {
					errs <- fmt.Sprintf("goroutine %d: y differs at %d", g, j)
					return
				}
				if i%5 == 0 {
					d, err := q.Dequantize()
					if _, ok := sameBits32(d, deq); err != nil || !ok {
						errs <- fmt.Sprintf("goroutine %d: Dequantize differs (%v)", g, err)
						return
					}
					if _, err := q.Export(FormatV1); err != nil {
						errs <- err.Error()
						return
					}
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

// TestConcurrentErrors: goroutines failing with distinct library messages,
// yielding between calls so that they move between OS threads, each get
// their own message.
func TestConcurrentErrors(t *testing.T) {
	const in = 64
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx, err := NewContext(4, in, nil)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer ctx.Close()
			x := make([]float32, in)
			for i := 0; i < 200; i++ {
				n := g*1000 + i
				// Library-side failures with a number in the message:
				// samples < 1 and bits out of range.
				err := ctx.AddBatch(x, 1, int64(-n))
				want := fmt.Sprintf("samples is %d;", -n)
				if e, ok := err.(*Error); !ok || e.Status != ErrInvalidSize || !strings.Contains(e.Message, want) {
					errs <- fmt.Sprintf("goroutine %d: got %v, want a message with %q", g, err, want)
					return
				}
				runtime.Gosched()
				cfg := DefaultConfig()
				cfg.Bits = 9 + n
				_, err = NewContext(4, in, &cfg)
				want = fmt.Sprintf("bits is %d;", 9+n)
				if e, ok := err.(*Error); !ok || e.Status != ErrInvalidConfig || !strings.Contains(e.Message, want) {
					errs <- fmt.Sprintf("goroutine %d: got %v, want a message with %q", g, err, want)
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

// TestContextSerialized: one Context used from many goroutines at once is
// serialized by its mutex (the library itself allows one thread at a time).
func TestContextSerialized(t *testing.T) {
	const out, in, rows = 16, 64, 8
	x, w := layerData(13, out, in, rows)
	ctx, err := NewContext(out, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if err := ctx.AddBatch(x, rows, 1); err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 {
					q, _, err := ctx.Quantize(w)
					if err != nil {
						t.Error(err)
						return
					}
					q.Close()
				}
				ctx.Samples()
			}
		}()
	}
	wg.Wait()
	if n := ctx.Samples(); n != 8*20 {
		t.Fatalf("Samples() = %d, want %d", n, 8*20)
	}
}
