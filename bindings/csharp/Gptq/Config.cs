// Configuration of a layer context: a gptq_config filled by gptq_config_default.
using System;

namespace Gptq
{
    /// <summary>
    /// Options of one layer context (gptq_config). A new Config holds the
    /// library's own defaults, read from gptq_config_default; the C library
    /// validates every value when a <see cref="Context"/> is created (an
    /// out-of-range value throws GptqException with ErrInvalidConfig there).
    /// A Context copies its Config, callbacks included: changing the Config
    /// later does not affect existing contexts.
    /// </summary>
    public sealed class Config
    {
        // Only plain values live here; callback pointers are filled in by Context.
        private gptq_config native;

        public Config()
        {
            native = Defaults();
        }

        internal static unsafe gptq_config Defaults()
        {
            gptq_config c;
            NativeMethods.gptq_config_default(&c);
            return c;
        }

        /// <summary>A copy of the plain fields (no callbacks set).</summary>
        internal gptq_config ToNative()
        {
            gptq_config c = native;
            c.progress = IntPtr.Zero;
            c.progress_user_data = IntPtr.Zero;
            c.log = IntPtr.Zero;
            c.log_user_data = IntPtr.Zero;
            return c;
        }

        /// <summary>A copy with the same values and callbacks.</summary>
        public Config Clone()
        {
            return (Config)MemberwiseClone();
        }

        /// <summary>Bits per weight, 2..8.</summary>
        public int Bits { get { return native.bits; } set { native.bits = value; } }

        /// <summary>Input columns per quantization group, or -1 for one group over all columns.</summary>
        public int GroupSize { get { return native.group_size; } set { native.group_size = value; } }

        /// <summary>Symmetric (zero fixed at 2^(bits-1)) or asymmetric (zero chosen per group).</summary>
        public bool Sym { get { return native.sym != 0; } set { native.sym = value ? 1 : 0; } }

        /// <summary>Quantize columns in order of descending Hessian diagonal ("desc_act").</summary>
        public bool ActOrder { get { return native.act_order != 0; } set { native.act_order = value ? 1 : 0; } }

        /// <summary>Compute all group parameters before any column is quantized.</summary>
        public bool StaticGroups { get { return native.static_groups != 0; } set { native.static_groups = value ? 1 : 0; } }

        /// <summary>Columns per lazy block (>= 1).</summary>
        public int BlockSize { get { return native.block_size; } set { native.block_size = value; } }

        /// <summary>Damping as a fraction of mean(diag H), 0 &lt;= x &lt; 1.</summary>
        public float DampPercent { get { return native.damp_percent; } set { native.damp_percent = value; } }

        /// <summary>Damping step when the Cholesky factorization fails (0 disables retries).</summary>
        public float DampIncrement { get { return native.damp_increment; } set { native.damp_increment = value; } }

        /// <summary>Search the clipping range minimizing Σ|q - w|^MseNorm per group and row.</summary>
        public bool Mse { get { return native.mse != 0; } set { native.mse = value ? 1 : 0; } }

        /// <summary>Norm of the MSE clip search (> 0).</summary>
        public float MseNorm { get { return native.mse_norm; } set { native.mse_norm = value; } }

        /// <summary>Steps of the MSE clip search (>= 1).</summary>
        public int MseGrid { get { return native.mse_grid; } set { native.mse_grid = value; } }

        /// <summary>Largest shrink of the range in the MSE clip search, in (0, 1].</summary>
        public float MseMaxShrink { get { return native.mse_max_shrink; } set { native.mse_max_shrink = value; } }

        /// <summary>Which implementation runs the work.</summary>
        public Backend Backend { get { return native.backend; } set { native.backend = value; } }

        /// <summary>Floating-point precision of the Hessian and the GPTQ loop.</summary>
        public Precision Precision { get { return native.precision; } set { native.precision = value; } }

        /// <summary>Lowest level passed to <see cref="Log"/>.</summary>
        public LogLevel LogLevel { get { return native.log_level; } set { native.log_level = value; } }

        /// <summary>Threads for the CPU backend's own loops; 0 = one per core.</summary>
        public int NumThreads { get { return native.num_threads; } set { native.num_threads = value; } }

        /// <summary>Group-aware act-order: groups keep their column ranges (g_idx stays
        /// j / group_size) but are quantized by their largest Hessian diagonal, and their
        /// columns by diagonal. Not with <see cref="ActOrder"/>.</summary>
        public bool ActGroupAware { get { return native.act_group_aware != 0; } set { native.act_group_aware = value ? 1 : 0; } }

        /// <summary>The grid: GPTQ's own, or one of llama.cpp's GGUF block formats, whose
        /// bytes <see cref="QTensor.GgufExport"/> writes. With a GGUF grid, Bits and
        /// GroupSize are the format's and in_features must be a multiple of the block
        /// (32, or 256 for the K-quants).</summary>
        public Grid Grid { get { return native.grid; } set { native.grid = value; } }

        /// <summary>
        /// Progress of Quantize: called with (done, total) columns on the calling
        /// thread; return false to cancel (Quantize then throws GptqException with
        /// ErrCancelled and the context is unchanged). An exception thrown here
        /// cancels too and becomes that GptqException's InnerException.
        /// </summary>
        public Func<long, long, bool> Progress { get; set; }

        /// <summary>
        /// Log sink of the context, called on the thread making the library call
        /// with messages at or above <see cref="LogLevel"/>. It must not call back
        /// into the same context. An exception thrown here is not passed to native
        /// code: the running operation is cancelled at its next progress check and
        /// the call fails with GptqException (ErrCancelled) whose InnerException it
        /// is (a result the call had already produced is disposed of).
        /// </summary>
        public Action<LogLevel, string> Log { get; set; }
    }
}
