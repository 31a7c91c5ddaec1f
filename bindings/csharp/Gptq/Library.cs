// Version and status names of the loaded libgptq.
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>Facts about the native libgptq actually loaded.</summary>
    public static class Library
    {
        /// <summary>MAJOR*10000 + MINOR*100 + PATCH of the header these bindings were generated from.</summary>
        public const uint HeaderVersionNumber = NativeMethods.GPTQ_VERSION_NUMBER;

        /// <summary>The loaded library's version, MAJOR*10000 + MINOR*100 + PATCH (gptq_version_number).</summary>
        public static uint VersionNumber
        {
            get { return NativeMethods.gptq_version_number(); }
        }

        /// <summary>The loaded library's version as "MAJOR.MINOR.PATCH" (gptq_version_string).</summary>
        public static string Version
        {
            get { return Marshal.PtrToStringAnsi(NativeMethods.gptq_version_string()); }
        }

        /// <summary>
        /// The version of the loaded library as a <see cref="System.Version"/>.
        /// </summary>
        public static Version VersionInfo
        {
            get
            {
                uint n = VersionNumber;
                return new Version((int)(n / 10000), (int)(n / 100 % 100), (int)(n % 100));
            }
        }

        /// <summary>
        /// True if the loaded library can serve these bindings: same MAJOR, number
        /// at least the header's.
        /// </summary>
        public static bool IsCompatible
        {
            get
            {
                uint n = VersionNumber;
                return n / 10000 == NativeMethods.GPTQ_VERSION_MAJOR && n >= NativeMethods.GPTQ_VERSION_NUMBER;
            }
        }

        /// <summary>The library's short static name of a status (gptq_status_string).</summary>
        public static string StatusString(Status status)
        {
            return Marshal.PtrToStringAnsi(NativeMethods.gptq_status_string(status));
        }
    }
}
