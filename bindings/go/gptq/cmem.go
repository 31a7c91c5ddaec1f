package gptq

// #include <stdint.h>
// #include <stdlib.h>
import "C"

import "unsafe"

// cCheckpoint is a gptq_checkpoint_tensors together with its four buffers,
// all in one C allocation. cgo forbids storing Go pointers in C memory and
// passing C a Go struct that holds Go pointers, so the struct that points to
// the buffers, and hence the buffers, must live outside the Go heap (Go 1.19
// has no runtime.Pinner). Data is copied between these buffers and Go
// slices.
type cCheckpoint struct {
	mem     unsafe.Pointer
	t       *c_gptq_checkpoint_tensors
	qweight []int32 // views of the C buffers
	qzeros  []int32
	scales  []uint16
	gIdx    []int32
}

// newCCheckpoint allocates the struct and buffers of the given lengths and
// points the struct at them. withGIdx false leaves g_idx NULL (import: the
// natural j / group_size). Zero-length buffers get a valid non-NULL pointer,
// so that the library reports their length rather than a NULL. Free with
// free().
func newCCheckpoint(where string, qweight, qzeros, scales, gIdx int, withGIdx bool) (*cCheckpoint, error) {
	const header = (c_sizeof_gptq_checkpoint_tensors + 7) &^ 7
	ints := uint64(qweight) + uint64(qzeros) + uint64(gIdx)
	size := uint64(header) + 4*ints + 2*uint64(scales) + 8
	if size > uint64(^uint(0)>>1) || ints > 1<<61 {
		return nil, goError(ErrOutOfMemory, where, "checkpoint buffers of %d bytes", size)
	}
	mem := C.malloc(C.size_t(size))
	if mem == nil {
		return nil, goError(ErrOutOfMemory, where, "could not allocate %d bytes of checkpoint buffers", size)
	}
	c := &cCheckpoint{mem: mem, t: (*c_gptq_checkpoint_tensors)(mem)}
	*c.t = c_gptq_checkpoint_tensors{}
	at := uintptr(header)
	next := func(n int, elem uintptr) unsafe.Pointer {
		p := unsafe.Add(mem, at)
		at += uintptr(n) * elem
		return p
	}
	pQWeight := next(qweight, 4)
	pQZeros := next(qzeros, 4)
	pGIdx := next(gIdx, 4)
	pScales := next(scales, 2)
	c.qweight = unsafe.Slice((*int32)(pQWeight), qweight)
	c.qzeros = unsafe.Slice((*int32)(pQZeros), qzeros)
	c.gIdx = unsafe.Slice((*int32)(pGIdx), gIdx)
	c.scales = unsafe.Slice((*uint16)(pScales), scales)

	c.t.qweight, c.t.qweight_len = (*C.int32_t)(pQWeight), C.int64_t(qweight)
	c.t.qzeros, c.t.qzeros_len = (*C.int32_t)(pQZeros), C.int64_t(qzeros)
	c.t.scales, c.t.scales_len = (*C.uint16_t)(pScales), C.int64_t(scales)
	if withGIdx {
		c.t.g_idx, c.t.g_idx_len = (*C.int32_t)(pGIdx), C.int64_t(gIdx)
	}
	return c, nil
}

func (c *cCheckpoint) free() {
	C.free(c.mem)
	*c = cCheckpoint{}
}
