// The one exception type for failures reported by libgptq (or found by this
// layer before calling it).
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>
    /// A libgptq call failed. <see cref="Status"/> is the library's status code and
    /// <see cref="Exception.Message"/> its message (gptq_last_error, read on the
    /// failing thread right after the call). Failures this layer detects itself
    /// (a buffer whose length does not fit the shape) use the same statuses with
    /// a message naming the C# method. An exception thrown by a progress or log
    /// callback cancels the operation and becomes the InnerException of a
    /// GptqException with status <see cref="Gptq.Status.ErrCancelled"/>.
    /// </summary>
    public class GptqException : Exception
    {
        /// <summary>The status libgptq returned (never <see cref="Gptq.Status.Ok"/>).</summary>
        public Status Status { get; }

        /// <summary>The library's name for <see cref="Status"/> (gptq_status_string).</summary>
        public string StatusName
        {
            get { return Library.StatusString(Status); }
        }

        public GptqException(Status status, string message)
            : base(message)
        {
            Status = status;
        }

        public GptqException(Status status, string message, Exception innerException)
            : base(message, innerException)
        {
            Status = status;
        }

        /// <summary>
        /// The exception for a failed native call. Must be called right after the
        /// call, on the same thread, with no library call in between: the message
        /// is the calling thread's gptq_last_error. The returned pointer is owned by
        /// the library and is only read here, never freed.
        /// </summary>
        internal static GptqException FromLastError(Status status, Exception inner = null)
        {
            string message = Marshal.PtrToStringAnsi(NativeMethods.gptq_last_error());
            if (string.IsNullOrEmpty(message))
                message = Library.StatusString(status);
            return new GptqException(status, message, inner);
        }

        /// <summary>Throws <see cref="FromLastError"/> unless status is Ok.</summary>
        internal static void Check(Status status)
        {
            if (status != Status.Ok)
                throw FromLastError(status);
        }

        internal static GptqException SizeMismatch(string where, string what)
        {
            return new GptqException(Status.ErrSizeMismatch, where + ": " + what);
        }

        internal static GptqException InvalidSize(string where, string what)
        {
            return new GptqException(Status.ErrInvalidSize, where + ": " + what);
        }

        internal static GptqException Unsupported(string where, string what)
        {
            return new GptqException(Status.ErrUnsupported, where + ": " + what);
        }
    }
}
