// Matmul with the quantized weights, single- and multi-threaded.
using System;
using System.Collections.Generic;
using System.Threading;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class MatmulTests
    {
        private static void AssertClose(double[] want, double[] scale, float[] got, double rel, string what)
        {
            Assert.AreEqual(want.Length, got.Length, what + ": length");
            for (int i = 0; i < want.Length; i++)
                if (Math.Abs(got[i] - want[i]) > rel * scale[i] + 1e-6)
                    Assert.Fail("{0}[{1}]: expected {2:R}, got {3:R}", what, i, want[i], got[i]);
        }

        [TestCase(1, false)]
        [TestCase(7, true)]
        [TestCase(33, true)]
        [TestCase(100, false)]
        public void MatmulEqualsDequantizeThenMultiply(int rows, bool withBias)
        {
            var cfg = new Config { Bits = 4, GroupSize = 32, ActOrder = true, Sym = false };
            using (QTensor q = Layer.Quantized(cfg))
            {
                float[] w = q.Dequantize();
                float[] x = Data.Activations(rows, Layer.K, 41);
                float[] bias = null;
                if (withBias)
                {
                    bias = new float[Layer.N];
                    for (int i = 0; i < bias.Length; i++)
                        bias[i] = (i % 7) * 0.25f - 0.75f;
                }
                float[] y = q.Matmul(x, rows, bias);
                Assert.AreEqual(rows * Layer.N, y.Length);
                double[] want = Data.MatmulReference(x, rows, w, Layer.N, Layer.K, bias);
                double[] scale = Data.MatmulMagnitude(x, rows, w, Layer.N, Layer.K);
                AssertClose(want, scale, y, 1e-5, "y");

                var into = new float[rows * Layer.N + 3];
                q.MatmulInto(new ReadOnlySpan<float>(x), rows, new Span<float>(into),
                             bias != null ? new ReadOnlySpan<float>(bias) : default(ReadOnlySpan<float>));
                for (int i = 0; i < y.Length; i++)
                    Assert.AreEqual(Bits.Of(y[i]), Bits.Of(into[i]), "MatmulInto[" + i + "]");
                Assert.AreEqual(0f, into[into.Length - 1], "past y untouched");
            }
        }

        [TestCase(Dtype.F16)]
        [TestCase(Dtype.BF16)]
        public void HalfMatmulRoundsTheFloatResultOnce(Dtype dtype)
        {
            const int rows = 5;
            using (QTensor q = Layer.Quantized())
            {
                float[] x = Data.HalfExact(rows * Layer.K, 42);
                float[] bias = Data.HalfExact(Layer.N, 43);
                float[] y = q.Matmul(x, rows, bias);
                ushort[] yh = q.Matmul(Half.Convert(x, dtype), dtype, rows, Half.Convert(bias, dtype));
                Assert.AreEqual(y.Length, yh.Length);
                float[] back = Half.Back(yh, dtype);
                double ulp = dtype == Dtype.F16 ? 1.0 / 1024 : 1.0 / 128;
                for (int i = 0; i < y.Length; i++)
                    Assert.AreEqual(y[i], back[i], ulp * Math.Abs(y[i]) + 1e-3, "y[" + i + "]");
            }
        }

        [Test]
        public void OneTensorSharedByManyThreads()
        {
            const int threads = 8, iterations = 25;
            using (QTensor q = Layer.Quantized(new Config { Bits = 3, GroupSize = 32 }))
            {
                var inputs = new List<float[]>();
                var expected = new List<float[]>();
                for (int t = 0; t < threads; t++)
                {
                    int rows = 1 + t * 5;
                    float[] x = Data.Activations(rows, Layer.K, (ulong)(100 + t));
                    inputs.Add(x);
                    expected.Add(q.Matmul(x, rows));
                }
                var errors = new List<string>();
                var start = new ManualResetEvent(false);
                var workers = new List<Thread>();
                for (int t = 0; t < threads; t++)
                {
                    int id = t;
                    var th = new Thread(() =>
                    {
                        start.WaitOne();
                        try
                        {
                            int rows = 1 + id * 5;
                            for (int it = 0; it < iterations; it++)
                            {
                                float[] y = q.Matmul(inputs[id], rows);
                                for (int i = 0; i < y.Length; i++)
                                    if (Bits.Of(y[i]) != Bits.Of(expected[id][i]))
                                        throw new Exception("thread " + id + " iteration " + it + ": y[" + i + "] differs");
                                if (it % 5 == 0)
                                    q.Dequantize();
                            }
                        }
                        catch (Exception e)
                        {
                            lock (errors)
                                errors.Add(e.ToString());
                        }
                    });
                    th.Start();
                    workers.Add(th);
                }
                start.Set();
                foreach (Thread th in workers)
                    th.Join();
                CollectionAssert.IsEmpty(errors);
            }
        }

        [Test]
        public void DisposeWhileOtherThreadsMultiplyIsSafe()
        {
            QTensor q = Layer.Quantized();
            float[] x = Data.Activations(16, Layer.K, 44);
            var stop = new ManualResetEvent(false);
            int calls = 0, disposedSeen = 0;
            var errors = new List<string>();
            var workers = new List<Thread>();
            for (int t = 0; t < 4; t++)
            {
                var th = new Thread(() =>
                {
                    while (!stop.WaitOne(0))
                    {
                        try
                        {
                            q.Matmul(x, 16);
                            Interlocked.Increment(ref calls);
                        }
                        catch (ObjectDisposedException)
                        {
                            Interlocked.Increment(ref disposedSeen);
                            return;
                        }
                        catch (Exception e)
                        {
                            lock (errors)
                                errors.Add(e.ToString());
                            return;
                        }
                    }
                });
                th.Start();
                workers.Add(th);
            }
            while (Volatile.Read(ref calls) < 20)
                Thread.Sleep(1);
            q.Dispose();
            Thread.Sleep(20);
            stop.Set();
            foreach (Thread th in workers)
                th.Join();
            CollectionAssert.IsEmpty(errors);
            Assert.AreEqual(4, disposedSeen, "every worker saw ObjectDisposedException");
            Assert.IsTrue(q.IsDisposed);
        }
    }
}
