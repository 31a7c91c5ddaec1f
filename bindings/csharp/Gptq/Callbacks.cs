// Progress and log callbacks: static trampolines handed to the C library, which
// find the context's managed delegates through user_data (a GCHandle).
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>
    /// Marks a static method called from native code, for Mono's ahead-of-time
    /// compilers (which look for an attribute of this name).
    /// </summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType)
        {
        }
    }

    /// <summary>
    /// A context's callbacks, and the first exception one of them threw. Managed
    /// exceptions never propagate into native code: the trampolines catch them,
    /// record them here and ask the library to cancel; the calling method then
    /// throws a GptqException (ErrCancelled) with the recorded InnerException.
    /// </summary>
    internal sealed class CallbackState
    {
        internal readonly Func<long, long, bool> Progress;
        internal readonly Action<LogLevel, string> Log;
        // Set on the thread making the call (callbacks run on it; a context is
        // used by one thread at a time).
        internal Exception Pending;

        internal CallbackState(Func<long, long, bool> progress, Action<LogLevel, string> log)
        {
            Progress = progress;
            Log = log;
        }

        /// <summary>Returns and clears the recorded exception.</summary>
        internal Exception TakePending()
        {
            Exception e = Pending;
            Pending = null;
            return e;
        }

        // The delegates are static and live as long as the AppDomain, so their
        // function pointers never dangle.
        private static readonly gptq_progress_fn ProgressThunk = OnProgress;
        private static readonly gptq_log_fn LogThunk = OnLog;
        internal static readonly IntPtr ProgressFunction = Marshal.GetFunctionPointerForDelegate(ProgressThunk);
        internal static readonly IntPtr LogFunction = Marshal.GetFunctionPointerForDelegate(LogThunk);

        private static CallbackState From(IntPtr userData)
        {
            if (userData == IntPtr.Zero)
                return null;
            return GCHandle.FromIntPtr(userData).Target as CallbackState;
        }

        [MonoPInvokeCallback(typeof(gptq_progress_fn))]
        private static int OnProgress(long done, long total, IntPtr userData)
        {
            CallbackState state = null;
            try
            {
                state = From(userData);
                if (state == null)
                    return 0;
                if (state.Pending != null)
                    return 1; // a log callback threw earlier in this call
                if (state.Progress == null)
                    return 0;
                return state.Progress(done, total) ? 0 : 1;
            }
            catch (Exception e)
            {
                if (state != null && state.Pending == null)
                    state.Pending = e;
                return 1;
            }
        }

        [MonoPInvokeCallback(typeof(gptq_log_fn))]
        private static void OnLog(LogLevel level, IntPtr message, IntPtr userData)
        {
            CallbackState state = null;
            try
            {
                state = From(userData);
                if (state == null || state.Log == null || state.Pending != null)
                    return;
                // The message belongs to the library and lives only during the call.
                state.Log(level, Marshal.PtrToStringAnsi(message));
            }
            catch (Exception e)
            {
                if (state != null && state.Pending == null)
                    state.Pending = e;
            }
        }
    }
}
