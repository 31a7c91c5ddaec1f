package gptq

import (
	"errors"
	"testing"
)

// TestGGUFExportDecodesToTheDequantizedWeights: for every GGUF grid the
// exported bytes have the header's block size and decode, as llama.cpp
// decodes them, to exactly the tensor's dequantized weights.
func TestGGUFExportDecodesToTheDequantizedWeights(t *testing.T) {
	// Bytes per 256 weights: eight blocks of 32, or one K super-block.
	bytesPer256 := map[Grid]int{GridQ40: 8 * 18, GridQ41: 8 * 20, GridQ50: 8 * 22, GridQ51: 8 * 24, GridQ80: 8 * 34,
		GridQ4K: 144, GridQ5K: 176, GridQ6K: 210}
	const out, in, rows = 16, 512, 160
	x, w := layerData(31, out, in, rows)
	for grid, size := range bytesPer256 {
		cfg := DefaultConfig()
		cfg.Grid = grid
		q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
		if q.Grid() != grid {
			t.Fatalf("Grid() = %v, want %v", q.Grid(), grid)
		}
		data, err := q.GGUFExport()
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != out*in/256*size {
			t.Fatalf("%v: %d bytes, want %d", grid, len(data), out*in/256*size)
		}
		decoded, err := GGUFDequantize(grid, data, out, in)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := q.Dequantize()
		if i, ok := sameBits32(decoded, want); !ok {
			t.Fatalf("%v: decoded weight %d is %v, dequantized %v", grid, i, decoded[i], want[i])
		}
		q.Close()
	}
}

func TestGGUFErrors(t *testing.T) {
	const out, in, rows = 8, 64, 100
	x, w := layerData(32, out, in, rows)
	cfg := DefaultConfig()
	q, _ := idiomaticQuantize(t, out, in, &cfg, x, rows, w)
	defer q.Close()
	expect := func(what string, err error, status Status) {
		t.Helper()
		var e *Error
		if !errors.As(err, &e) || e.Status != status {
			t.Fatalf("%s: got %v, want status %v", what, err, status)
		}
	}
	if q.Grid() != GridGPTQ {
		t.Fatalf("Grid() = %v for a GPTQ tensor", q.Grid())
	}
	_, err := q.GGUFExport()
	expect("export of a GPTQ tensor", err, ErrUnsupported)
	_, err = GGUFSize(GridGPTQ, 1, 32)
	expect("size of GPTQ's grid", err, ErrInvalidConfig)
	_, err = GGUFSize(GridQ40, 1, 48)
	expect("size of a partial block", err, ErrInvalidSize)
	_, err = GGUFDequantize(GridQ80, make([]byte, 33), 1, 32)
	expect("one byte short", err, ErrSizeMismatch)
	_, err = GGUFDequantize(GridQ80, make([]byte, 34), 1<<30, 1<<20)
	expect("a shape far beyond the data", err, ErrSizeMismatch)
}
