// A quantized tensor: packed weights usable for matmul, exportable as a checkpoint.
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>
    /// Packed low-bit weights [OutFeatures, InFeatures] (gptq_qtensor), made by
    /// <see cref="Context.Quantize(float[], out QuantStats)"/> or <see cref="Import(CheckpointTensors)"/>.
    /// Immutable: any number of threads may call Matmul, Dequantize, Codes, Export
    /// and Info on one QTensor at once. Disposing it while other threads are in a
    /// call only takes effect when those calls return.
    /// </summary>
    public sealed class QTensor : IDisposable
    {
        private readonly QTensorHandle handle;
        private readonly QTensorInfo info;
        private readonly Grid grid;

        internal unsafe QTensor(QTensorHandle handle)
        {
            this.handle = handle;
            gptq_qtensor_info i;
            Status st = NativeMethods.gptq_qtensor_get_info(handle.DangerousGetHandle(), &i);
            if (st != Status.Ok)
            {
                GptqException e = GptqException.FromLastError(st);
                handle.Dispose();
                throw e;
            }
            info = new QTensorInfo(i);
            grid = NativeMethods.gptq_qtensor_grid(handle.DangerousGetHandle());
        }

        /// <summary>Frees the native tensor (gptq_qtensor_destroy). Safe to call more than once.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        /// <summary>True once disposed.</summary>
        public bool IsDisposed
        {
            get { return handle.IsClosed; }
        }

        /// <summary>Shape and parameters (gptq_qtensor_get_info, read once).</summary>
        public QTensorInfo Info
        {
            get { return info; }
        }

        public long OutFeatures { get { return info.OutFeatures; } }
        public long InFeatures { get { return info.InFeatures; } }

        private HandleLease Lease()
        {
            return new HandleLease(handle, "Gptq.QTensor");
        }

        private long Elements
        {
            get { return checked(info.OutFeatures * info.InFeatures); }
        }

        /// <summary>
        /// The dequantized weights scale·(code - zero), float32 [OutFeatures, InFeatures]
        /// in the original column order (gptq_qtensor_dequantize).
        /// </summary>
        public unsafe float[] Dequantize()
        {
            var w = new float[Elements];
            using (HandleLease h = Lease())
            fixed (float* p = w)
                GptqException.Check(NativeMethods.gptq_qtensor_dequantize(h.Ptr, p, w.LongLength));
            return w;
        }

        /// <summary>
        /// The integer codes [OutFeatures, InFeatures], one byte each, 0 .. 2^bits - 1,
        /// original column order (gptq_qtensor_codes).
        /// </summary>
        public unsafe byte[] Codes()
        {
            var c = new byte[Elements];
            using (HandleLease h = Lease())
            fixed (byte* p = c)
                GptqException.Check(NativeMethods.gptq_qtensor_codes(h.Ptr, p, c.LongLength));
            return c;
        }

        /// <summary>The grid the codes lie on (gptq_qtensor_grid): the Config.Grid of the
        /// context that made the tensor, Grid.Gptq for imported checkpoints.</summary>
        public Grid Grid
        {
            get { return grid; }
        }

        /// <summary>
        /// The tensor in its GGUF block format's bytes (gptq_gguf_export):
        /// <see cref="Gguf.Size"/> bytes, the data of a GGUF tensor of that type with
        /// ne0 = InFeatures.
        /// </summary>
        /// <exception cref="GptqException">ErrUnsupported: the tensor is on GPTQ's own grid.</exception>
        public unsafe byte[] GgufExport()
        {
            if (grid == Grid.Gptq)
                throw GptqException.Unsupported("Gptq.QTensor.GgufExport",
                    "the tensor is on GPTQ's own grid, not a GGUF one (Config.Grid)");
            var bytes = new byte[Gguf.Size(grid, info.OutFeatures, info.InFeatures)];
            using (HandleLease h = Lease())
            fixed (byte* p = bytes)
                GptqException.Check(NativeMethods.gptq_gguf_export(h.Ptr, (IntPtr)p, bytes.LongLength));
            return bytes;
        }

        /// <summary>The sizes of this tensor's checkpoint tensors.</summary>
        public CheckpointSizes CheckpointSizes
        {
            get { return CheckpointSizes.For(info.OutFeatures, info.InFeatures, info.Bits, info.GroupSize); }
        }

        /// <summary>
        /// The tensor in GPTQ checkpoint layout (gptq_qtensor_export).
        /// </summary>
        /// <exception cref="GptqException">ErrUnsupported: K or N not a multiple of the
        /// packing unit, or format V1 with a zero of 0 (asymmetric quantization: use V2).</exception>
        public unsafe CheckpointTensors Export(CheckpointFormat format)
        {
            CheckpointSizes s = CheckpointSizes;
            var t = new CheckpointTensors(info.OutFeatures, info.InFeatures, info.Bits, info.GroupSize, format,
                new int[s.QWeightLength], new int[s.QZerosLength], new ushort[s.ScalesLength], new int[s.GIdxLength]);
            using (HandleLease h = Lease())
            fixed (int* qweight = t.QWeight)
            fixed (int* qzeros = t.QZeros)
            fixed (ushort* scales = t.Scales)
            fixed (int* gIdx = t.GIdx)
            {
                var native = new gptq_checkpoint_tensors
                {
                    qweight = qweight, qweight_len = t.QWeight.LongLength,
                    qzeros = qzeros, qzeros_len = t.QZeros.LongLength,
                    scales = scales, scales_len = t.Scales.LongLength,
                    g_idx = gIdx, g_idx_len = t.GIdx.LongLength,
                };
                GptqException.Check(NativeMethods.gptq_qtensor_export(h.Ptr, format, &native));
            }
            return t;
        }

        /// <summary>
        /// Builds a tensor from checkpoint tensors quantized elsewhere
        /// (gptq_qtensor_import), using their OutFeatures, InFeatures, Bits,
        /// GroupSize and Format. GIdx may be null (j / group_size).
        /// </summary>
        public static QTensor Import(CheckpointTensors t)
        {
            if (t == null)
                throw new ArgumentNullException("t");
            return Import(t.OutFeatures, t.InFeatures, t.Bits, t.GroupSize, t.Format, t);
        }

        /// <summary>
        /// Builds a tensor from checkpoint tensors quantized elsewhere
        /// (gptq_qtensor_import). The buffers are copied. Lengths, shapes and data
        /// are checked by the library.
        /// </summary>
        /// <exception cref="GptqException">ErrNullPointer (a tensor other than GIdx is
        /// null), ErrInvalidSize, ErrInvalidConfig, ErrUnsupported, ErrSizeMismatch,
        /// ErrInvalidData, ErrOutOfMemory.</exception>
        public static unsafe QTensor Import(long outFeatures, long inFeatures, int bits, int groupSize,
                                            CheckpointFormat format, CheckpointTensors t)
        {
            if (t == null)
                throw new ArgumentNullException("t");
            var q = new QTensorHandle();
            Status st;
            fixed (int* qweight = t.QWeight)
            fixed (int* qzeros = t.QZeros)
            fixed (ushort* scales = t.Scales)
            fixed (int* gIdx = t.GIdx)
            {
                var native = new gptq_checkpoint_tensors
                {
                    qweight = qweight, qweight_len = t.QWeight != null ? t.QWeight.LongLength : 0,
                    qzeros = qzeros, qzeros_len = t.QZeros != null ? t.QZeros.LongLength : 0,
                    scales = scales, scales_len = t.Scales != null ? t.Scales.LongLength : 0,
                    g_idx = gIdx, g_idx_len = t.GIdx != null ? t.GIdx.LongLength : 0,
                };
                IntPtr raw = IntPtr.Zero;
                try
                {
                }
                finally
                {
                    st = NativeMethods.gptq_qtensor_import(outFeatures, inFeatures, bits, groupSize, format, &native, &raw);
                    if (st == Status.Ok)
                        q.Attach(raw);
                }
            }
            GptqException.Check(st);
            return new QTensor(q);
        }

        // ------------------------------------------------------------------ matmul

        /// <summary>
        /// y = x·Wᵀ (+ bias) for x [rows, InFeatures] (gptq_matmul); returns y
        /// [rows, OutFeatures]. bias is [OutFeatures] or null. Thread-safe.
        /// </summary>
        /// <exception cref="GptqException">ErrSizeMismatch (x not rows·InFeatures, bias not
        /// OutFeatures long), ErrInvalidSize (rows &lt; 1), ErrOutOfMemory.</exception>
        public float[] Matmul(float[] x, int rows, float[] bias = null)
        {
            if (x == null)
                throw new ArgumentNullException("x");
            Context.Columns("QTensor.Matmul", "x", x.Length, rows); // validates rows before y is allocated
            var y = new float[checked(rows * info.OutFeatures)];
            MatmulInto(new ReadOnlySpan<float>(x), rows, new Span<float>(y),
                       bias != null ? new ReadOnlySpan<float>(bias) : default(ReadOnlySpan<float>),
                       bias != null);
            return y;
        }

        /// <summary>
        /// y = x·Wᵀ (+ bias) into a caller buffer y of at least rows·OutFeatures
        /// elements; an empty bias means none. Thread-safe.
        /// </summary>
        public void MatmulInto(ReadOnlySpan<float> x, int rows, Span<float> y,
                               ReadOnlySpan<float> bias = default(ReadOnlySpan<float>))
        {
            MatmulInto(x, rows, y, bias, !bias.IsEmpty);
        }

        private unsafe void MatmulInto(ReadOnlySpan<float> x, int rows, Span<float> y, ReadOnlySpan<float> bias, bool hasBias)
        {
            long cols = Context.Columns("QTensor.Matmul", "x", x.Length, rows);
            CheckBias(hasBias, bias.Length);
            fixed (float* px = &MemoryMarshal.GetReference(x))
            fixed (float* pb = &MemoryMarshal.GetReference(bias))
            fixed (float* py = &MemoryMarshal.GetReference(y))
                MatmulRaw((IntPtr)px, Dtype.F32, rows, cols, hasBias ? (IntPtr)pb : IntPtr.Zero, (IntPtr)py, y.Length);
        }

        /// <summary>
        /// y = x·Wᵀ (+ bias) with x, bias and y as fp16 or bf16 bit patterns
        /// (<paramref name="dtype"/> F16 or BF16); accumulates in float32 and rounds
        /// once at the end. Thread-safe.
        /// </summary>
        public ushort[] Matmul(ushort[] x, Dtype dtype, int rows, ushort[] bias = null)
        {
            if (x == null)
                throw new ArgumentNullException("x");
            Context.Columns("QTensor.Matmul", "x", x.Length, rows); // validates rows before y is allocated
            var y = new ushort[checked(rows * info.OutFeatures)];
            MatmulInto(new ReadOnlySpan<ushort>(x), dtype, rows, new Span<ushort>(y),
                       bias != null ? new ReadOnlySpan<ushort>(bias) : default(ReadOnlySpan<ushort>), bias != null);
            return y;
        }

        /// <summary>The fp16/bf16 matmul into a caller buffer; an empty bias means none.</summary>
        public void MatmulInto(ReadOnlySpan<ushort> x, Dtype dtype, int rows, Span<ushort> y,
                               ReadOnlySpan<ushort> bias = default(ReadOnlySpan<ushort>))
        {
            MatmulInto(x, dtype, rows, y, bias, !bias.IsEmpty);
        }

        private unsafe void MatmulInto(ReadOnlySpan<ushort> x, Dtype dtype, int rows, Span<ushort> y,
                                       ReadOnlySpan<ushort> bias, bool hasBias)
        {
            Context.CheckHalf("QTensor.Matmul", dtype);
            long cols = Context.Columns("QTensor.Matmul", "x", x.Length, rows);
            CheckBias(hasBias, bias.Length);
            fixed (ushort* px = &MemoryMarshal.GetReference(x))
            fixed (ushort* pb = &MemoryMarshal.GetReference(bias))
            fixed (ushort* py = &MemoryMarshal.GetReference(y))
                MatmulRaw((IntPtr)px, dtype, rows, cols, hasBias ? (IntPtr)pb : IntPtr.Zero, (IntPtr)py, y.Length);
        }

        // The library cannot see the bias's length: check it here.
        private void CheckBias(bool hasBias, int length)
        {
            if (hasBias && length != info.OutFeatures)
                throw GptqException.SizeMismatch("QTensor.Matmul",
                    "bias has " + length + " elements but the tensor has out_features " + info.OutFeatures);
        }

        private void MatmulRaw(IntPtr x, Dtype dtype, long rows, long cols, IntPtr bias, IntPtr y, long yLength)
        {
            using (HandleLease h = Lease())
                GptqException.Check(NativeMethods.gptq_matmul(h.Ptr, x, dtype, rows, cols, bias, y, yLength));
        }
    }
}
