// SafeHandle subclasses owning gptq_ctx and gptq_qtensor, and the lease that
// keeps a handle open for the length of a native call.
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>Owns a gptq_ctx; ReleaseHandle calls gptq_ctx_destroy.</summary>
    internal sealed class ContextHandle : SafeHandle
    {
        // The callbacks' state; the native context gets a weak GCHandle to it as
        // user_data. This field keeps it alive exactly as long as the handle, and
        // the handle is alive (leased) during every native call that can call back.
        // Weak, so that a callback capturing its Context cannot root it forever.
        internal readonly CallbackState Callbacks;
        private GCHandle callbacksHandle;

        internal ContextHandle(CallbackState callbacks)
            : base(IntPtr.Zero, true)
        {
            Callbacks = callbacks;
            if (callbacks != null)
                callbacksHandle = GCHandle.Alloc(callbacks, GCHandleType.Weak);
        }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        /// <summary>The user_data given to the native callbacks (IntPtr.Zero if none).</summary>
        internal IntPtr CallbackUserData
        {
            get { return callbacksHandle.IsAllocated ? GCHandle.ToIntPtr(callbacksHandle) : IntPtr.Zero; }
        }

        internal void Attach(IntPtr ctx)
        {
            SetHandle(ctx);
        }

        /// <summary>Frees the callbacks' GCHandle of a handle that never got a context.</summary>
        internal void Abandon()
        {
            if (IsInvalid && callbacksHandle.IsAllocated)
                callbacksHandle.Free();
            SetHandleAsInvalid();
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.gptq_ctx_destroy(handle);
            // Only after destroy: nothing can call back any more.
            if (callbacksHandle.IsAllocated)
                callbacksHandle.Free();
            return true;
        }
    }

    /// <summary>Owns a gptq_qtensor; ReleaseHandle calls gptq_qtensor_destroy.</summary>
    internal sealed class QTensorHandle : SafeHandle
    {
        internal QTensorHandle()
            : base(IntPtr.Zero, true)
        {
        }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        internal void Attach(IntPtr q)
        {
            SetHandle(q);
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.gptq_qtensor_destroy(handle);
            return true;
        }
    }

    /// <summary>
    /// Holds a reference on a SafeHandle for one native call:
    /// <c>using (var h = new HandleLease(handle, "Context")) Call(h.Ptr);</c>.
    /// A Dispose on another thread meanwhile only marks the handle closed; the
    /// destroy function runs when the last lease ends.
    /// </summary>
    internal struct HandleLease : IDisposable
    {
        private readonly SafeHandle handle;
        private bool added;
        internal readonly IntPtr Ptr;

        internal HandleLease(SafeHandle handle, string objectName)
        {
            if (handle.IsClosed)
                throw new ObjectDisposedException(objectName);
            bool ok = false;
            handle.DangerousAddRef(ref ok);
            this.handle = handle;
            added = ok;
            Ptr = handle.DangerousGetHandle();
        }

        public void Dispose()
        {
            if (added)
            {
                added = false;
                handle.DangerousRelease();
            }
        }
    }
}
