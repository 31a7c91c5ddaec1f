// Assembly attributes of Gptq.dll, the idiomatic C# layer of libgptq.
using System.Reflection;
using System.Runtime.CompilerServices;

[assembly: AssemblyTitle("Gptq")]
[assembly: AssemblyDescription("GPTQ post-training quantization: C# binding of libgptq")]
// The tests drive the generated NativeMethods directly to compare this layer
// with the C library bit for bit.
[assembly: InternalsVisibleTo("Gptq.Tests")]
