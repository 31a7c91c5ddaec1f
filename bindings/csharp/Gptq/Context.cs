// A layer context: configuration + Hessian accumulator of one linear layer.
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>
    /// The GPTQ state of one linear layer y = x·Wᵀ with W [OutFeatures, InFeatures]
    /// (gptq_ctx): add calibration activations with <see cref="AddBatch(float[], int, long)"/>,
    /// then <see cref="Quantize(float[], out QuantStats)"/> the weights.
    /// Use from one thread at a time. Dispose it (or let a using block do it);
    /// the QTensors it produced stay valid.
    /// </summary>
    public sealed class Context : IDisposable
    {
        private readonly ContextHandle handle;

        /// <summary>N: rows of the layer's weight.</summary>
        public long OutFeatures { get; }

        /// <summary>K: columns of the layer's weight, the width of every batch.</summary>
        public long InFeatures { get; }

        /// <summary>
        /// Creates a context (gptq_ctx_create). config null means the library's
        /// defaults; it is copied, callbacks included.
        /// </summary>
        /// <exception cref="GptqException">ErrInvalidSize, ErrInvalidConfig,
        /// ErrBackendUnavailable, ErrOutOfMemory, or ErrCancelled when the log
        /// callback threw.</exception>
        public unsafe Context(long outFeatures, long inFeatures, Config config = null)
        {
            gptq_config native = config != null ? config.ToNative() : Config.Defaults();
            CallbackState callbacks = null;
            if (config != null && (config.Progress != null || config.Log != null))
                callbacks = new CallbackState(config.Progress, config.Log);
            var h = new ContextHandle(callbacks);
            if (callbacks != null)
            {
                // The progress trampoline is installed for a log callback alone too:
                // it is what cancels the operation when the log callback threw.
                native.progress = CallbackState.ProgressFunction;
                native.progress_user_data = h.CallbackUserData;
                if (callbacks.Log != null)
                {
                    native.log = CallbackState.LogFunction;
                    native.log_user_data = h.CallbackUserData;
                }
            }

            Status st;
            IntPtr raw = IntPtr.Zero;
            try
            {
            }
            finally
            {
                // In a finally block, so nothing can come between creation and ownership.
                st = NativeMethods.gptq_ctx_create(outFeatures, inFeatures, &native, &raw);
                if (st == Status.Ok)
                    h.Attach(raw);
            }
            if (st != Status.Ok)
            {
                GptqException e = GptqException.FromLastError(st, callbacks != null ? callbacks.TakePending() : null);
                h.Abandon();
                throw e;
            }
            handle = h;
            OutFeatures = outFeatures;
            InFeatures = inFeatures;
            Exception pending = callbacks != null ? callbacks.TakePending() : null;
            if (pending != null)
            {
                h.Dispose();
                throw CallbackFailed("Context", pending);
            }
        }

        /// <summary>Frees the native context (gptq_ctx_destroy). Safe to call more than once.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        /// <summary>True once disposed.</summary>
        public bool IsDisposed
        {
            get { return handle.IsClosed; }
        }

        private HandleLease Lease()
        {
            return new HandleLease(handle, "Gptq.Context");
        }

        private static GptqException CallbackFailed(string where, Exception inner)
        {
            return new GptqException(Status.ErrCancelled,
                where + ": a callback threw " + inner.GetType().FullName + ": " + inner.Message, inner);
        }

        private void BeginCall()
        {
            if (handle.Callbacks != null)
                handle.Callbacks.Pending = null;
        }

        private Exception EndCall()
        {
            return handle.Callbacks != null ? handle.Callbacks.TakePending() : null;
        }

        // ------------------------------------------------------------------ calibration

        /// <summary>
        /// Adds calibration activations x [rows, InFeatures] (row-major, one token per
        /// row) standing for <paramref name="samples"/> calibration samples
        /// (gptq_add_batch). Pass samples = rows for a per-token mean.
        /// </summary>
        /// <exception cref="GptqException">ErrSizeMismatch (x.Length is not rows·cols with
        /// cols = InFeatures), ErrInvalidSize, ErrNonFinite, ErrOutOfMemory.</exception>
        public void AddBatch(float[] x, int rows, long samples)
        {
            if (x == null)
                throw new ArgumentNullException("x");
            AddBatch(new ReadOnlySpan<float>(x), rows, samples);
        }

        /// <summary>The same as <see cref="AddBatch(float[], int, long)"/> for a span.</summary>
        public unsafe void AddBatch(ReadOnlySpan<float> x, int rows, long samples)
        {
            long cols = Columns("Context.AddBatch", "x", x.Length, rows);
            fixed (float* p = &MemoryMarshal.GetReference(x))
                AddBatchRaw((IntPtr)p, Dtype.F32, rows, cols, samples);
        }

        /// <summary>
        /// Adds activations given as fp16 or bf16 bit patterns
        /// (<paramref name="dtype"/> <see cref="Dtype.F16"/> or <see cref="Dtype.BF16"/>).
        /// </summary>
        public void AddBatch(ushort[] x, Dtype dtype, int rows, long samples)
        {
            if (x == null)
                throw new ArgumentNullException("x");
            AddBatch(new ReadOnlySpan<ushort>(x), dtype, rows, samples);
        }

        /// <summary>The same as <see cref="AddBatch(ushort[], Dtype, int, long)"/> for a span.</summary>
        public unsafe void AddBatch(ReadOnlySpan<ushort> x, Dtype dtype, int rows, long samples)
        {
            CheckHalf("Context.AddBatch", dtype);
            long cols = Columns("Context.AddBatch", "x", x.Length, rows);
            fixed (ushort* p = &MemoryMarshal.GetReference(x))
                AddBatchRaw((IntPtr)p, dtype, rows, cols, samples);
        }

        private void AddBatchRaw(IntPtr x, Dtype dtype, long rows, long cols, long samples)
        {
            using (HandleLease h = Lease())
            {
                BeginCall();
                Status st = NativeMethods.gptq_add_batch(h.Ptr, x, dtype, rows, cols, samples);
                Exception pending = EndCall();
                if (st != Status.Ok)
                    throw GptqException.FromLastError(st, pending);
                if (pending != null)
                    throw CallbackFailed("Context.AddBatch", pending);
            }
        }

        /// <summary>Calibration samples seen so far (gptq_ctx_samples).</summary>
        public long Samples
        {
            get
            {
                using (HandleLease h = Lease())
                    return NativeMethods.gptq_ctx_samples(h.Ptr);
            }
        }

        /// <summary>
        /// Merges the Hessian of <paramref name="source"/> into this one, as if this
        /// context had seen its batches too (gptq_ctx_merge). source is unchanged.
        /// </summary>
        /// <exception cref="GptqException">ErrSizeMismatch (different InFeatures),
        /// ErrInvalidState (source is this context), ErrInvalidSize, ErrNonFinite.</exception>
        public void Merge(Context source)
        {
            if (source == null)
                throw new ArgumentNullException("source");
            using (HandleLease dst = Lease())
            using (HandleLease src = source.Lease())
                GptqException.Check(NativeMethods.gptq_ctx_merge(dst.Ptr, src.Ptr));
        }

        /// <summary>
        /// The Hessian [InFeatures, InFeatures] (row-major) and its sample count
        /// (gptq_ctx_export_hessian), e.g. to merge on another machine.
        /// </summary>
        public unsafe double[] ExportHessian(out long samples)
        {
            var h = new double[checked(InFeatures * InFeatures)];
            long n = 0;
            using (HandleLease lease = Lease())
            fixed (double* p = h)
                GptqException.Check(NativeMethods.gptq_ctx_export_hessian(lease.Ptr, p, h.LongLength, &n));
            samples = n;
            return h;
        }

        /// <summary>
        /// Merges an exported Hessian with <paramref name="samples"/> samples into
        /// this context (gptq_ctx_import_hessian); into an empty context, a plain load.
        /// </summary>
        /// <exception cref="GptqException">ErrSizeMismatch (h.Length != InFeatures²),
        /// ErrInvalidSize, ErrNonFinite.</exception>
        public unsafe void ImportHessian(double[] h, long samples)
        {
            if (h == null)
                throw new ArgumentNullException("h");
            using (HandleLease lease = Lease())
            fixed (double* p = h)
                GptqException.Check(NativeMethods.gptq_ctx_import_hessian(lease.Ptr, p, h.LongLength, samples));
        }

        // ------------------------------------------------------------------ quantization

        /// <summary>
        /// Quantizes the layer's weights w [OutFeatures, InFeatures] (row-major) with
        /// the Hessian collected so far (gptq_quantize). The context is not consumed.
        /// </summary>
        /// <exception cref="GptqException">ErrSizeMismatch, ErrNonFinite, ErrInvalidState
        /// (no calibration data yet), ErrUnsupported, ErrCancelled (the progress callback
        /// returned false or a callback threw), ErrOutOfMemory.</exception>
        public QTensor Quantize(float[] w, out QuantStats stats)
        {
            if (w == null)
                throw new ArgumentNullException("w");
            return Quantize(new ReadOnlySpan<float>(w), out stats);
        }

        /// <summary>The same as <see cref="Quantize(float[], out QuantStats)"/>, without the statistics.</summary>
        public QTensor Quantize(float[] w)
        {
            QuantStats stats;
            return Quantize(w, out stats);
        }

        /// <summary>The same as <see cref="Quantize(float[], out QuantStats)"/> for a span.</summary>
        public unsafe QTensor Quantize(ReadOnlySpan<float> w, out QuantStats stats)
        {
            long rows = Rows("Context.Quantize", w.Length);
            fixed (float* p = &MemoryMarshal.GetReference(w))
                return QuantizeRaw((IntPtr)p, Dtype.F32, rows, out stats);
        }

        /// <summary>Quantizes weights given as fp16 or bf16 bit patterns.</summary>
        public QTensor Quantize(ushort[] w, Dtype dtype, out QuantStats stats)
        {
            if (w == null)
                throw new ArgumentNullException("w");
            return Quantize(new ReadOnlySpan<ushort>(w), dtype, out stats);
        }

        /// <summary>The same as <see cref="Quantize(ushort[], Dtype, out QuantStats)"/> for a span.</summary>
        public unsafe QTensor Quantize(ReadOnlySpan<ushort> w, Dtype dtype, out QuantStats stats)
        {
            CheckHalf("Context.Quantize", dtype);
            long rows = Rows("Context.Quantize", w.Length);
            fixed (ushort* p = &MemoryMarshal.GetReference(w))
                return QuantizeRaw((IntPtr)p, dtype, rows, out stats);
        }

        private unsafe QTensor QuantizeRaw(IntPtr w, Dtype dtype, long rows, out QuantStats stats)
        {
            var s = default(gptq_quant_stats);
            s.struct_size = (UIntPtr)(uint)sizeof(gptq_quant_stats);
            var q = new QTensorHandle();
            using (HandleLease h = Lease())
            {
                BeginCall();
                Status st;
                IntPtr raw = IntPtr.Zero;
                try
                {
                }
                finally
                {
                    st = NativeMethods.gptq_quantize(h.Ptr, w, dtype, rows, InFeatures, &raw, &s);
                    if (st == Status.Ok)
                        q.Attach(raw);
                }
                Exception pending = EndCall();
                if (st != Status.Ok)
                    throw GptqException.FromLastError(st, pending);
                if (pending != null)
                {
                    q.Dispose();
                    throw CallbackFailed("Context.Quantize", pending);
                }
            }
            stats = new QuantStats(s);
            return new QTensor(q);
        }

        // ------------------------------------------------------------------ helpers

        // cols of a [rows, cols] buffer of `length` elements; the library checks
        // cols against in_features.
        internal static long Columns(string where, string name, int length, int rows)
        {
            if (rows < 1)
                throw GptqException.InvalidSize(where, "rows is " + rows + "; it must be >= 1");
            if (length == 0 || length % rows != 0)
                throw GptqException.SizeMismatch(where,
                    name + " has " + length + " elements, which is not " + rows + " rows of equal length");
            return length / rows;
        }

        // rows of a [rows, InFeatures] weight of `length` elements; the library
        // checks rows against out_features.
        private long Rows(string where, int length)
        {
            if (length == 0 || length % InFeatures != 0)
                throw GptqException.SizeMismatch(where,
                    "w has " + length + " elements, but the layer's weight is [" + OutFeatures + ", " +
                    InFeatures + "] = " + OutFeatures * InFeatures);
            return length / InFeatures;
        }

        internal static void CheckHalf(string where, Dtype dtype)
        {
            if (dtype != Dtype.F16 && dtype != Dtype.BF16)
                throw GptqException.Unsupported(where,
                    "ushort data must be Dtype.F16 or Dtype.BF16, not " + dtype);
        }
    }
}
