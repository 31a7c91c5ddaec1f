// Hand-written smoke test of the generated NativeMethods.g.cs, run against a
// real libgptq. Build and run (see bindings/test_lowlevel.sh):
//   mcs -unsafe -out:smoke.exe Gptq/NativeMethods.g.cs tests/LowLevelSmoke.cs
//   LD_LIBRARY_PATH=<dir of libgptq.so> mono smoke.exe

using System;
using System.Runtime.InteropServices;

namespace Gptq.Tests
{
    internal static unsafe class LowLevelSmoke
    {
        private static int failures;

        private static void Check(bool ok, string what)
        {
            if (!ok)
            {
                failures++;
                Console.Error.WriteLine("FAIL: " + what);
            }
        }

        private static int Main()
        {
            foreach (var e in NativeLayout.Check())
                Check(false, e);

            uint n = NativeMethods.gptq_version_number();
            Check(n / 10000 == NativeMethods.GPTQ_VERSION_MAJOR && n >= NativeMethods.GPTQ_VERSION_NUMBER,
                  "version number " + n);
            string s = Marshal.PtrToStringAnsi(NativeMethods.gptq_version_string());
            Check(s == string.Format("{0}.{1}.{2}", n / 10000, n / 100 % 100, n % 100), "version string " + s);

            gptq_config cfg;
            NativeMethods.gptq_config_default(&cfg);
            Check(cfg.struct_size.ToUInt64() == (ulong)sizeof(gptq_config) && cfg.bits == 4
                  && cfg.log_level == LogLevel.Info, "gptq_config_default");

            IntPtr ctx;
            Status st = NativeMethods.gptq_ctx_create(0, 16, null, &ctx);
            string msg = Marshal.PtrToStringAnsi(NativeMethods.gptq_last_error());
            Check(st == Status.ErrInvalidSize && ctx == IntPtr.Zero && !string.IsNullOrEmpty(msg),
                  "failing create: " + st + " " + msg);

            // A progress callback that cancels: the delegate becomes a C function pointer.
            int calls = 0;
            gptq_progress_fn cancel = (done, total, userData) => { calls++; return 1; };
            cfg.progress = Marshal.GetFunctionPointerForDelegate(cancel);
            st = NativeMethods.gptq_ctx_create(4, 32, &cfg, &ctx);
            Check(st == Status.Ok, "create: " + st);
            var x = new float[8 * 32];
            for (int i = 0; i < x.Length; i++)
                x[i] = (i * 7919 % 23) - 11;
            var w = new float[4 * 32];
            for (int i = 0; i < w.Length; i++)
                w[i] = (i * 104729 % 17) / 8.0f - 1;
            fixed (float* px = x)
                st = NativeMethods.gptq_add_batch(ctx, (IntPtr)px, Dtype.F32, 8, 32, 8);
            Check(st == Status.Ok, "add_batch: " + st);
            IntPtr q;
            gptq_quant_stats stats = default(gptq_quant_stats);
            stats.struct_size = (UIntPtr)sizeof(gptq_quant_stats);
            fixed (float* pw = w)
                st = NativeMethods.gptq_quantize(ctx, (IntPtr)pw, Dtype.F32, 4, 32, &q, &stats);
            Check(st == Status.ErrCancelled && q == IntPtr.Zero && calls > 0, "cancelled quantize: " + st);
            GC.KeepAlive(cancel);
            NativeMethods.gptq_ctx_destroy(ctx);

            Console.WriteLine(failures == 0 ? "csharp low-level smoke test: OK" : "csharp low-level smoke test: FAILED");
            return failures == 0 ? 0 : 1;
        }
    }
}
