// GGUF blocks: llama.cpp's tensor formats, for tensors quantized on a GGUF grid.
using System;

namespace Gptq
{
    /// <summary>
    /// Sizes and decoding of GGUF block data (the header's "GGUF blocks" section
    /// documents each layout). <see cref="QTensor.GgufExport"/> writes such data.
    /// </summary>
    public static class Gguf
    {
        /// <summary>Bytes of a [rows, cols] tensor in the block format of grid (gptq_gguf_size).</summary>
        /// <exception cref="GptqException">ErrInvalidConfig for Grid.Gptq; ErrInvalidSize when
        /// cols is not whole blocks or a dimension is out of range.</exception>
        public static unsafe long Size(Grid grid, long rows, long cols)
        {
            long bytes;
            GptqException.Check(NativeMethods.gptq_gguf_size(grid, rows, cols, &bytes));
            return bytes;
        }

        /// <summary>
        /// Decodes blocks of grid (exactly <see cref="Size"/> bytes) into float32
        /// [rows, cols], as llama.cpp dequantizes them (gptq_gguf_dequantize): for a
        /// tensor this library quantized, exactly <see cref="QTensor.Dequantize"/>'s values.
        /// </summary>
        public static unsafe float[] Dequantize(Grid grid, byte[] data, long rows, long cols)
        {
            if (data == null) throw new ArgumentNullException("data");
            // The size is checked before the output is allocated, so a shape the data
            // cannot hold never asks for a huge array.
            long need = Size(grid, rows, cols);
            if (data.LongLength != need)
                throw GptqException.SizeMismatch("Gptq.Gguf.Dequantize",
                    data.LongLength + " bytes given; a [" + rows + ", " + cols + "] tensor of this grid is " +
                    need + " bytes");
            var w = new float[checked(rows * cols)];
            fixed (byte* src = data)
            fixed (float* dst = w)
                GptqException.Check(NativeMethods.gptq_gguf_dequantize(grid, (IntPtr)src, data.LongLength,
                                                                       rows, cols, dst, w.LongLength));
            return w;
        }
    }
}
