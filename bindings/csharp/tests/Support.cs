// Test data, fp16/bf16 conversions, and the reference path: the same work done
// through the generated NativeMethods directly, with no idiomatic layer between.
using System;
using System.Runtime.InteropServices;
using NUnit.Framework;

namespace Gptq.Tests
{
    /// <summary>Deterministic pseudo-random numbers (xorshift64*), independent of the runtime.</summary>
    internal sealed class Rng
    {
        private ulong state;

        internal Rng(ulong seed)
        {
            state = seed * 0x9E3779B97F4A7C15UL + 0x2545F4914F6CDD1DUL;
            if (state == 0)
                state = 1;
        }

        internal ulong Next()
        {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            return state * 0x2545F4914F6CDD1DUL;
        }

        /// <summary>Uniform in [0, 1).</summary>
        internal double Uniform()
        {
            return (Next() >> 11) * (1.0 / 9007199254740992.0);
        }

        internal double Gaussian()
        {
            double u1 = 1.0 - Uniform(), u2 = Uniform();
            return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
    }

    internal static class Data
    {
        /// <summary>
        /// Activations [rows, cols] with correlated columns and column scales that
        /// differ (so the Hessian is far from diagonal and act-order matters).
        /// </summary>
        internal static float[] Activations(int rows, int cols, ulong seed)
        {
            var rng = new Rng(seed);
            var x = new float[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                double shared = rng.Gaussian();
                double prev = 0;
                for (int c = 0; c < cols; c++)
                {
                    double scale = 0.25 + (c * 37 % 11) / 4.0;
                    double v = rng.Gaussian() + 0.6 * prev + 0.3 * shared;
                    prev = v;
                    x[r * cols + c] = (float)(scale * v);
                }
            }
            return x;
        }

        internal static float[] Weights(int rows, int cols, ulong seed)
        {
            var rng = new Rng(seed);
            var w = new float[rows * cols];
            for (int i = 0; i < w.Length; i++)
                w[i] = (float)(0.05 * rng.Gaussian());
            return w;
        }

        /// <summary>Values exactly representable in fp16 and bf16: small multiples of 1/8.</summary>
        internal static float[] HalfExact(int count, ulong seed)
        {
            var rng = new Rng(seed);
            var v = new float[count];
            for (int i = 0; i < count; i++)
                v[i] = (int)(rng.Next() % 33) / 8.0f - 2.0f;
            return v;
        }

        /// <summary>y = x·wᵀ (+ bias) in double.</summary>
        internal static double[] MatmulReference(float[] x, int rows, float[] w, int n, int k, float[] bias)
        {
            var y = new double[rows * n];
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < n; o++)
                {
                    double s = bias != null ? bias[o] : 0.0;
                    for (int j = 0; j < k; j++)
                        s += (double)x[r * k + j] * w[o * k + j];
                    y[r * n + o] = s;
                }
            return y;
        }

        /// <summary>Σ |x|·|w| per output, the scale of float rounding in a product.</summary>
        internal static double[] MatmulMagnitude(float[] x, int rows, float[] w, int n, int k)
        {
            var y = new double[rows * n];
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < n; o++)
                {
                    double s = 0;
                    for (int j = 0; j < k; j++)
                        s += Math.Abs((double)x[r * k + j] * w[o * k + j]);
                    y[r * n + o] = s;
                }
            return y;
        }
    }

    internal static unsafe class Bits
    {
        internal static int Of(float f)
        {
            return *(int*)&f;
        }

        internal static long Of(double d)
        {
            return *(long*)&d;
        }

        /// <summary>Asserts two float arrays are equal bit for bit.</summary>
        internal static void AssertIdentical(float[] expected, float[] actual, string what)
        {
            Assert.AreEqual(expected.Length, actual.Length, what + ": length");
            for (int i = 0; i < expected.Length; i++)
                if (Of(expected[i]) != Of(actual[i]))
                    Assert.Fail("{0}[{1}]: expected {2:R}, got {3:R}", what, i, expected[i], actual[i]);
        }

        internal static void AssertIdentical(double[] expected, double[] actual, string what)
        {
            Assert.AreEqual(expected.Length, actual.Length, what + ": length");
            for (int i = 0; i < expected.Length; i++)
                if (Of(expected[i]) != Of(actual[i]))
                    Assert.Fail("{0}[{1}]: expected {2:R}, got {3:R}", what, i, expected[i], actual[i]);
        }
    }

    internal static unsafe class Half
    {
        /// <summary>float → IEEE binary16, round to nearest even (normal and subnormal results).</summary>
        internal static ushort FromFloat(float f)
        {
            uint u = *(uint*)&f;
            uint sign = (u >> 16) & 0x8000u;
            int exp = (int)((u >> 23) & 0xFF);
            uint mant = u & 0x7FFFFFu;
            if (exp == 0xFF)
                return (ushort)(sign | 0x7C00u | (mant != 0 ? 0x200u : 0u));
            int e = exp - 127 + 15;
            if (e >= 0x1F)
                return (ushort)(sign | 0x7C00u);
            if (e <= 0)
            {
                if (e < -10)
                    return (ushort)sign;
                mant |= 0x800000u;
                int shift = 14 - e;
                uint half = mant >> shift;
                uint rest = mant & ((1u << shift) - 1);
                uint mid = 1u << (shift - 1);
                if (rest > mid || (rest == mid && (half & 1) != 0))
                    half++;
                return (ushort)(sign | half);
            }
            uint h = sign | ((uint)e << 10) | (mant >> 13);
            uint r = mant & 0x1FFFu;
            if (r > 0x1000u || (r == 0x1000u && (h & 1) != 0))
                h++;
            return (ushort)h;
        }

        internal static float ToFloat(ushort h)
        {
            int sign = (h & 0x8000) != 0 ? -1 : 1;
            int exp = (h >> 10) & 0x1F;
            int mant = h & 0x3FF;
            if (exp == 0)
                return sign * mant * (float)Math.Pow(2, -24);
            if (exp == 0x1F)
                return mant != 0 ? float.NaN : sign * float.PositiveInfinity;
            return sign * (1 + mant / 1024.0f) * (float)Math.Pow(2, exp - 15);
        }

        /// <summary>float → bfloat16, round to nearest even.</summary>
        internal static ushort Bf16FromFloat(float f)
        {
            uint u = *(uint*)&f;
            uint rounding = 0x7FFFu + ((u >> 16) & 1);
            return (ushort)((u + rounding) >> 16);
        }

        internal static float Bf16ToFloat(ushort b)
        {
            uint u = (uint)b << 16;
            return *(float*)&u;
        }

        internal static ushort[] Convert(float[] v, Dtype dtype)
        {
            var r = new ushort[v.Length];
            for (int i = 0; i < v.Length; i++)
                r[i] = dtype == Dtype.F16 ? FromFloat(v[i]) : Bf16FromFloat(v[i]);
            return r;
        }

        internal static float[] Back(ushort[] v, Dtype dtype)
        {
            var r = new float[v.Length];
            for (int i = 0; i < v.Length; i++)
                r[i] = dtype == Dtype.F16 ? ToFloat(v[i]) : Bf16ToFloat(v[i]);
            return r;
        }
    }

    /// <summary>What the C library produces for one layer, read through NativeMethods only.</summary>
    internal sealed class NativeResult
    {
        internal byte[] Codes;
        internal float[] Dequantized;
        internal gptq_quant_stats Stats;
        internal int[] QWeight, QZeros, GIdx;
        internal ushort[] Scales;
        internal gptq_qtensor_info Info;
    }

    /// <summary>The reference path: the generated P/Invoke layer, nothing else.</summary>
    internal static unsafe class Native
    {
        internal static string LastError()
        {
            return Marshal.PtrToStringAnsi(NativeMethods.gptq_last_error());
        }

        internal static void Ok(Status st, string what)
        {
            if (st != Status.Ok)
                Assert.Fail("{0}: {1}: {2}", what, st, LastError());
        }

        internal static gptq_config DefaultConfig()
        {
            gptq_config c;
            NativeMethods.gptq_config_default(&c);
            return c;
        }

        /// <summary>
        /// create → add_batch(x, rows, samples) → quantize(w) → codes, dequantize,
        /// export V2 (when the shape packs) → destroy.
        /// </summary>
        internal static NativeResult Quantize(gptq_config cfg, int n, int k, float[] x, int rows, long samples, float[] w)
        {
            var r = new NativeResult();
            IntPtr ctx = IntPtr.Zero, q = IntPtr.Zero;
            try
            {
                Ok(NativeMethods.gptq_ctx_create(n, k, &cfg, &ctx), "gptq_ctx_create");
                fixed (float* px = x)
                    Ok(NativeMethods.gptq_add_batch(ctx, (IntPtr)px, Dtype.F32, rows, k, samples), "gptq_add_batch");
                gptq_quant_stats stats = default(gptq_quant_stats);
                stats.struct_size = (UIntPtr)(uint)sizeof(gptq_quant_stats);
                fixed (float* pw = w)
                    Ok(NativeMethods.gptq_quantize(ctx, (IntPtr)pw, Dtype.F32, n, k, &q, &stats), "gptq_quantize");
                r.Stats = stats;
                gptq_qtensor_info info;
                Ok(NativeMethods.gptq_qtensor_get_info(q, &info), "gptq_qtensor_get_info");
                r.Info = info;
                r.Codes = new byte[n * k];
                fixed (byte* p = r.Codes)
                    Ok(NativeMethods.gptq_qtensor_codes(q, p, r.Codes.Length), "gptq_qtensor_codes");
                r.Dequantized = new float[n * k];
                fixed (float* p = r.Dequantized)
                    Ok(NativeMethods.gptq_qtensor_dequantize(q, p, r.Dequantized.Length), "gptq_qtensor_dequantize");
                gptq_checkpoint_sizes s;
                if (NativeMethods.gptq_checkpoint_sizes_for(n, k, info.bits, info.group_size, &s) == Status.Ok)
                {
                    r.QWeight = new int[s.qweight_rows * s.qweight_cols];
                    r.QZeros = new int[s.qzeros_rows * s.qzeros_cols];
                    r.Scales = new ushort[s.scales_rows * s.scales_cols];
                    r.GIdx = new int[s.g_idx_len];
                    fixed (int* qw = r.QWeight)
                    fixed (int* qz = r.QZeros)
                    fixed (ushort* sc = r.Scales)
                    fixed (int* gi = r.GIdx)
                    {
                        var t = new gptq_checkpoint_tensors
                        {
                            qweight = qw, qweight_len = r.QWeight.Length,
                            qzeros = qz, qzeros_len = r.QZeros.Length,
                            scales = sc, scales_len = r.Scales.Length,
                            g_idx = gi, g_idx_len = r.GIdx.Length,
                        };
                        Ok(NativeMethods.gptq_qtensor_export(q, CheckpointFormat.V2, &t), "gptq_qtensor_export");
                    }
                }
                return r;
            }
            finally
            {
                NativeMethods.gptq_qtensor_destroy(q);
                NativeMethods.gptq_ctx_destroy(ctx);
            }
        }
    }

    /// <summary>Shared helpers of the fixtures.</summary>
    internal static class Layer
    {
        internal const int N = 64, K = 128, Rows = 256;

        /// <summary>A context with the standard calibration data added.</summary>
        internal static Context Calibrated(Config cfg, int n = N, int k = K, int rows = Rows, ulong seed = 1)
        {
            var ctx = new Context(n, k, cfg);
            try
            {
                ctx.AddBatch(Data.Activations(rows, k, seed), rows, rows);
            }
            catch
            {
                ctx.Dispose();
                throw;
            }
            return ctx;
        }

        internal static QTensor Quantized(Config cfg = null, int n = N, int k = K)
        {
            using (Context ctx = Calibrated(cfg ?? new Config(), n, k))
                return ctx.Quantize(Data.Weights(n, k, 2));
        }

        /// <summary>Asserts the exception carries the message the library set on this thread.</summary>
        internal static void AssertLibraryMessage(GptqException e, Status status, string contains)
        {
            Assert.AreEqual(status, e.Status, e.Message);
            Assert.AreEqual(Native.LastError(), e.Message, "the message is gptq_last_error()");
            StringAssert.StartsWith("gptq_", e.Message);
            if (contains != null)
                StringAssert.Contains(contains, e.Message);
        }
    }
}
