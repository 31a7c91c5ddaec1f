// Disposal, using blocks, finalization.
using System;
using System.IO;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class LifetimeTests
    {
        [Test]
        public void DisposeTwiceIsSafe()
        {
            var ctx = new Context(Layer.N, Layer.K);
            ctx.AddBatch(Data.Activations(8, Layer.K, 71), 8, 8);
            QTensor q = ctx.Quantize(Data.Weights(Layer.N, Layer.K, 72));
            ctx.Dispose();
            ctx.Dispose();
            Assert.IsTrue(ctx.IsDisposed);
            q.Dispose();
            q.Dispose();
            Assert.IsTrue(q.IsDisposed);
        }

        [Test]
        public void UseAfterDisposeThrowsObjectDisposed()
        {
            var ctx = new Context(Layer.N, Layer.K);
            ctx.AddBatch(Data.Activations(8, Layer.K, 73), 8, 8);
            QTensor q = ctx.Quantize(Data.Weights(Layer.N, Layer.K, 74));
            ctx.Dispose();
            Assert.Throws<ObjectDisposedException>(() => { long s = ctx.Samples; });
            Assert.Throws<ObjectDisposedException>(() => ctx.AddBatch(new float[Layer.K], 1, 1));
            Assert.Throws<ObjectDisposedException>(() => ctx.Quantize(new float[Layer.N * Layer.K]));
            long samples;
            Assert.Throws<ObjectDisposedException>(() => ctx.ExportHessian(out samples));
            using (var other = new Context(Layer.N, Layer.K))
            {
                Assert.Throws<ObjectDisposedException>(() => other.Merge(ctx));
                Assert.Throws<ObjectDisposedException>(() => ctx.Merge(other));
            }
            // The tensor outlives the context that made it.
            Assert.AreEqual(Layer.N * Layer.K, q.Codes().Length);
            q.Dispose();
            Assert.Throws<ObjectDisposedException>(() => q.Matmul(new float[Layer.K], 1));
            Assert.Throws<ObjectDisposedException>(() => q.Dequantize());
            Assert.Throws<ObjectDisposedException>(() => q.Export(CheckpointFormat.V2));
            Assert.AreEqual(Layer.N, q.Info.OutFeatures, "Info stays readable");
        }

        [Test]
        public void UsingBlocks()
        {
            float[] y;
            QTensor escaped;
            using (var ctx = new Context(Layer.N, Layer.K, new Config { Bits = 8 }))
            {
                ctx.AddBatch(Data.Activations(32, Layer.K, 75), 32, 32);
                using (QTensor q = ctx.Quantize(Data.Weights(Layer.N, Layer.K, 76)))
                {
                    escaped = q;
                    y = q.Matmul(Data.Activations(2, Layer.K, 77), 2);
                }
                Assert.IsTrue(escaped.IsDisposed);
                Assert.IsFalse(ctx.IsDisposed);
            }
            Assert.AreEqual(2 * Layer.N, y.Length);
        }

        [Test]
        public void UndisposedObjectsAreFinalized()
        {
            for (int i = 0; i < 50; i++)
            {
                var ctx = new Context(8, 32, new Config { Progress = (d, t) => true, Log = (l, m) => { } });
                ctx.AddBatch(Data.Activations(4, 32, (ulong)i), 4, 4);
                ctx.Quantize(Data.Weights(8, 32, 78));
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        [Test]
        public void ExampleProgramRuns()
        {
            TextWriter saved = Console.Out;
            var output = new StringWriter();
            int rc;
            Console.SetOut(output);
            try
            {
                rc = Gptq.Examples.QuantizeExample.Main(new string[0]);
            }
            finally
            {
                Console.SetOut(saved);
            }
            Assert.AreEqual(0, rc, output.ToString());
            StringAssert.Contains("libgptq ", output.ToString());
            StringAssert.Contains("GPTQ output error", output.ToString());
        }
    }
}
