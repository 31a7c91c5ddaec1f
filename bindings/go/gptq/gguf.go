package gptq

import (
	"math"
	"unsafe"
)

// GGUF blocks: tensors quantized on one of llama.cpp's block formats
// (Config.Grid), written as the bytes of a GGUF tensor of that type. The
// header (include/gptq.h, "GGUF blocks") documents each layout.

// Grid returns the grid the codes lie on (gptq_qtensor_grid): the
// Config.Grid of the Context that made the tensor, GridGPTQ for imported
// checkpoints. It also answers after Close, as Info does.
func (q *QTensor) Grid() Grid { return q.grid }

// GGUFExport returns the tensor in its GGUF block format's bytes
// (gptq_gguf_export): GGUFSize(q.Grid(), OutFeatures, InFeatures) bytes, the
// data of a GGUF tensor of that type with ne0 = InFeatures. A tensor on
// GPTQ's own grid fails with ErrUnsupported.
func (q *QTensor) GGUFExport() ([]byte, error) {
	const where = "gptq.QTensor.GGUFExport"
	if q.grid == GridGPTQ {
		return nil, goError(ErrUnsupported, where, "the tensor is on GPTQ's own grid, not a GGUF one (Config.Grid)")
	}
	n, err := GGUFSize(q.grid, q.info.OutFeatures, q.info.InFeatures)
	if err != nil {
		return nil, err
	}
	if err := q.rlock(where); err != nil {
		return nil, err
	}
	defer q.runlock()
	out := make([]byte, n)
	if err := statusError(c_gptq_gguf_export(q.ptr, unsafe.Pointer(&out[0]), int64(len(out)))); err != nil {
		return nil, err
	}
	return out, nil
}

// GGUFSize returns the bytes of a [rows, cols] tensor in the GGUF block
// format of grid (gptq_gguf_size): ErrInvalidConfig for GridGPTQ,
// ErrInvalidSize when cols is not whole blocks.
func GGUFSize(grid Grid, rows, cols int) (int, error) {
	var n int64
	if err := statusError(c_gptq_gguf_size(grid, int64(rows), int64(cols), &n)); err != nil {
		return 0, err
	}
	if n > math.MaxInt {
		return 0, goError(ErrInvalidSize, "gptq.GGUFSize", "%d bytes do not fit in an int", n)
	}
	return int(n), nil
}

// GGUFDequantize decodes GGUF blocks of grid (exactly GGUFSize bytes) into a
// row-major [rows, cols] float32 matrix, as llama.cpp dequantizes them
// (gptq_gguf_dequantize): for a tensor this library quantized, exactly
// QTensor.Dequantize's values.
func GGUFDequantize(grid Grid, data []byte, rows, cols int) ([]float32, error) {
	const where = "gptq.GGUFDequantize"
	// The byte count is checked before the output is allocated, so a shape
	// the data cannot hold never asks for a huge allocation.
	n, err := GGUFSize(grid, rows, cols)
	if err != nil {
		return nil, err
	}
	if len(data) != n {
		return nil, goError(ErrSizeMismatch, where, "%d bytes given; a [%d, %d] tensor of this grid is %d bytes",
			len(data), rows, cols, n)
	}
	out := make([]float32, rows*cols)
	if err := statusError(c_gptq_gguf_dequantize(grid, unsafe.Pointer(&data[0]), int64(len(data)),
		int64(rows), int64(cols), &out[0], int64(len(out)))); err != nil {
		return nil, err
	}
	return out, nil
}
