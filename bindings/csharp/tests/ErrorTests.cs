// Every kind of failure surfaces as a GptqException with the library's status
// and message.
using System;
using System.Collections.Generic;
using System.Threading;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class ErrorTests
    {
        [Test]
        public void BatchWidthMismatchIsTheLibrarysSizeMismatch()
        {
            using (var ctx = new Context(Layer.N, Layer.K))
            {
                // 4 rows of K+1 columns: a well-formed buffer of the wrong width.
                var x = new float[4 * (Layer.K + 1)];
                var e = Assert.Throws<GptqException>(() => ctx.AddBatch(x, 4, 4));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch,
                    "x has " + (Layer.K + 1) + " columns but the layer has in_features " + Layer.K);
                Assert.AreEqual(0, ctx.Samples, "nothing added");
            }
        }

        [Test]
        public void BufferNotRowsTimesColumnsIsCaughtInCSharp()
        {
            using (var ctx = new Context(Layer.N, Layer.K))
            {
                var e = Assert.Throws<GptqException>(() => ctx.AddBatch(new float[Layer.K * 3 + 1], 3, 3));
                Assert.AreEqual(Status.ErrSizeMismatch, e.Status);
                StringAssert.StartsWith("Context.AddBatch: ", e.Message);
                e = Assert.Throws<GptqException>(() => ctx.AddBatch(new float[Layer.K], 0, 1));
                Assert.AreEqual(Status.ErrInvalidSize, e.Status);
                e = Assert.Throws<GptqException>(() => ctx.Quantize(new float[Layer.N * Layer.K - 1]));
                Assert.AreEqual(Status.ErrSizeMismatch, e.Status);
                StringAssert.StartsWith("Context.Quantize: ", e.Message);
                Assert.Throws<ArgumentNullException>(() => ctx.AddBatch((float[])null, 1, 1));
            }
        }

        [Test]
        public void WeightsOfTheWrongShapeAreTheLibrarysSizeMismatch()
        {
            using (Context ctx = Layer.Calibrated(null))
            {
                // A whole number of K-wide rows, but not N of them.
                var e = Assert.Throws<GptqException>(() => ctx.Quantize(new float[(Layer.N - 1) * Layer.K]));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch, "w is [" + (Layer.N - 1) + ", " + Layer.K + "]");
            }
        }

        [Test]
        public void NaNIsNonFinite()
        {
            using (var ctx = new Context(Layer.N, Layer.K))
            {
                float[] x = Data.Activations(8, Layer.K, 51);
                x[3 * Layer.K + 5] = float.NaN;
                var e = Assert.Throws<GptqException>(() => ctx.AddBatch(x, 8, 8));
                Layer.AssertLibraryMessage(e, Status.ErrNonFinite, "x[3, 5] is NaN or Inf");
                Assert.AreEqual(0, ctx.Samples);

                ctx.AddBatch(Data.Activations(8, Layer.K, 52), 8, 8);
                float[] w = Data.Weights(Layer.N, Layer.K, 53);
                w[7] = float.PositiveInfinity;
                e = Assert.Throws<GptqException>(() => ctx.Quantize(w));
                Layer.AssertLibraryMessage(e, Status.ErrNonFinite, "w[0, 7]");

                var h = new double[Layer.K * Layer.K];
                h[0] = double.NaN;
                e = Assert.Throws<GptqException>(() => ctx.ImportHessian(h, 1));
                Layer.AssertLibraryMessage(e, Status.ErrNonFinite, null);
            }
        }

        [Test]
        public void NineBitsIsInvalidConfig()
        {
            var e = Assert.Throws<GptqException>(() => new Context(Layer.N, Layer.K, new Config { Bits = 9 }));
            Layer.AssertLibraryMessage(e, Status.ErrInvalidConfig, "bits");
            e = Assert.Throws<GptqException>(() => new Context(Layer.N, Layer.K, new Config { DampPercent = 1.5f }));
            Layer.AssertLibraryMessage(e, Status.ErrInvalidConfig, "damp_percent");
            e = Assert.Throws<GptqException>(() => new Context(0, Layer.K));
            Layer.AssertLibraryMessage(e, Status.ErrInvalidSize, null);
        }

        [Test]
        public void QuantizeBeforeAddBatchIsInvalidState()
        {
            using (var ctx = new Context(Layer.N, Layer.K))
            {
                var e = Assert.Throws<GptqException>(() => ctx.Quantize(Data.Weights(Layer.N, Layer.K, 54)));
                Layer.AssertLibraryMessage(e, Status.ErrInvalidState, "no calibration data");
                Assert.AreEqual("GPTQ_ERR_INVALID_STATE", e.StatusName.Split(':')[0]);
            }
        }

        [Test]
        public void V1ExportOfAZeroOfZeroIsUnsupported()
        {
            // Asymmetric with all-positive weights: xmin = 0 gives zero 0 in group 0.
            float[] w = Data.Weights(Layer.N, Layer.K, 55);
            for (int i = 0; i < w.Length; i++)
                w[i] = Math.Abs(w[i]) + 0.01f;
            using (Context ctx = Layer.Calibrated(new Config { Sym = false, GroupSize = 32 }))
            using (QTensor q = ctx.Quantize(w))
            {
                var e = Assert.Throws<GptqException>(() => q.Export(CheckpointFormat.V1));
                Layer.AssertLibraryMessage(e, Status.ErrUnsupported, "GPTQ_FORMAT_V2");
                CheckpointTensors t = q.Export(CheckpointFormat.V2);
                Assert.AreEqual(0, t.QZeros[0] & 0xF, "a stored zero of 0");
            }
        }

        [Test]
        public void MergeErrors()
        {
            using (Context a = Layer.Calibrated(null))
            using (var b = new Context(Layer.N, Layer.K + 32))
            {
                var e = Assert.Throws<GptqException>(() => a.Merge(b));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch, null);
                e = Assert.Throws<GptqException>(() => a.Merge(a));
                Layer.AssertLibraryMessage(e, Status.ErrInvalidState, "same context");
                e = Assert.Throws<GptqException>(() => a.ImportHessian(new double[Layer.K * Layer.K - 1], 1));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch, null);
                e = Assert.Throws<GptqException>(() => a.ImportHessian(new double[Layer.K * Layer.K], 0));
                Layer.AssertLibraryMessage(e, Status.ErrInvalidSize, "samples");
            }
        }

        [Test]
        public void MatmulErrors()
        {
            using (QTensor q = Layer.Quantized())
            {
                var e = Assert.Throws<GptqException>(() => q.Matmul(new float[2 * (Layer.K - 1)], 2));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch, "in_features " + Layer.K);
                e = Assert.Throws<GptqException>(() => q.Matmul(new float[2 * Layer.K], 2, new float[Layer.N - 1]));
                Assert.AreEqual(Status.ErrSizeMismatch, e.Status);
                StringAssert.Contains("bias", e.Message);
                e = Assert.Throws<GptqException>(() =>
                    q.MatmulInto(new ReadOnlySpan<float>(new float[2 * Layer.K]), 2, new Span<float>(new float[2 * Layer.N - 1])));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch, "y_len");
                e = Assert.Throws<GptqException>(() => q.Matmul(new ushort[Layer.K], Dtype.F32, 1));
                Assert.AreEqual(Status.ErrUnsupported, e.Status);
            }
        }

        [Test]
        public void CudaWhenUnavailableIsBackendUnavailable()
        {
            try
            {
                using (var ctx = new Context(Layer.N, Layer.K, new Config { Backend = Backend.Cuda }))
                    Assert.Pass("this libgptq has a usable CUDA backend");
            }
            catch (GptqException e)
            {
                Layer.AssertLibraryMessage(e, Status.ErrBackendUnavailable, "CUDA");
            }
        }

        [Test]
        public void EachThreadGetsItsOwnMessage()
        {
            // Two kinds of failure on many threads at once: every exception must
            // carry the message of its own call.
            const int threads = 8, iterations = 50;
            var errors = new List<string>();
            var workers = new List<Thread>();
            for (int t = 0; t < threads; t++)
            {
                int id = t;
                var th = new Thread(() =>
                {
                    try
                    {
                        using (var ctx = new Context(4, 32 + id))
                            for (int i = 0; i < iterations; i++)
                            {
                                int width = 100 + id * 10 + i % 3;
                                try
                                {
                                    ctx.AddBatch(new float[width], 1, 1);
                                    throw new Exception("no failure");
                                }
                                catch (GptqException e)
                                {
                                    string want = "gptq_add_batch: x has " + width +
                                                  " columns but the layer has in_features " + (32 + id);
                                    if (e.Message != want)
                                        throw new Exception("thread " + id + " got '" + e.Message + "'");
                                }
                            }
                    }
                    catch (Exception e)
                    {
                        lock (errors)
                            errors.Add(e.Message);
                    }
                });
                th.Start();
                workers.Add(th);
            }
            foreach (Thread th in workers)
                th.Join();
            CollectionAssert.IsEmpty(errors);
        }
    }
}
