// The idiomatic layer against the C library driven directly: same inputs, same
// bits out.
using System;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class QuantizeTests
    {
        [Test]
        public void VersionMatchesTheLoadedLibrary()
        {
            Assert.AreEqual(NativeMethods.gptq_version_number(), Library.VersionNumber);
            uint n = Library.VersionNumber;
            Assert.AreEqual(string.Format("{0}.{1}.{2}", n / 10000, n / 100 % 100, n % 100), Library.Version);
            Assert.AreEqual(new Version(Library.Version), Library.VersionInfo);
            Assert.AreEqual(NativeMethods.GPTQ_VERSION_NUMBER, Library.HeaderVersionNumber);
            Assert.IsTrue(Library.IsCompatible);
            StringAssert.StartsWith("GPTQ_ERR_SIZE_MISMATCH", Library.StatusString(Status.ErrSizeMismatch));
        }

        [Test]
        public void GeneratedLayoutMatchesTheCompiler()
        {
            CollectionAssert.IsEmpty(NativeLayout.Check());
        }

        [Test]
        public void ConfigDefaultsComeFromTheLibrary()
        {
            gptq_config d = Native.DefaultConfig();
            var c = new Config();
            Assert.AreEqual(d.bits, c.Bits);
            Assert.AreEqual(d.group_size, c.GroupSize);
            Assert.AreEqual(d.sym != 0, c.Sym);
            Assert.AreEqual(d.act_order != 0, c.ActOrder);
            Assert.AreEqual(d.static_groups != 0, c.StaticGroups);
            Assert.AreEqual(d.block_size, c.BlockSize);
            Assert.AreEqual(d.damp_percent, c.DampPercent);
            Assert.AreEqual(d.damp_increment, c.DampIncrement);
            Assert.AreEqual(d.mse != 0, c.Mse);
            Assert.AreEqual(d.mse_norm, c.MseNorm);
            Assert.AreEqual(d.mse_grid, c.MseGrid);
            Assert.AreEqual(d.mse_max_shrink, c.MseMaxShrink);
            Assert.AreEqual(d.backend, c.Backend);
            Assert.AreEqual(d.precision, c.Precision);
            Assert.AreEqual(d.log_level, c.LogLevel);
            Assert.AreEqual(d.num_threads, c.NumThreads);
            Assert.AreEqual(d.act_group_aware != 0, c.ActGroupAware);
            Assert.AreEqual(d.grid, c.Grid);
            Assert.IsNull(c.Progress);
            Assert.IsNull(c.Log);
            gptq_config n = c.ToNative();
            Assert.AreEqual(d.struct_size, n.struct_size);
            // The header's documented defaults, as a sanity check of the above.
            Assert.AreEqual(4, c.Bits);
            Assert.AreEqual(128, c.GroupSize);
            Assert.IsTrue(c.Sym);
        }

        [Test]
        public void ConfigCloneIsIndependent()
        {
            var a = new Config { Bits = 3, Progress = (d, t) => true };
            Config b = a.Clone();
            b.Bits = 8;
            Assert.AreEqual(3, a.Bits);
            Assert.AreEqual(8, b.Bits);
            Assert.AreSame(a.Progress, b.Progress);
        }

        // bits, group, sym, act_order, static_groups, mse, f64, block
        [TestCase(4, 128, true, false, false, false, false, 128)]
        [TestCase(4, 32, true, false, false, false, false, 128)]
        [TestCase(3, 32, false, true, false, false, false, 64)]
        [TestCase(2, 64, false, true, true, false, false, 32)]
        [TestCase(8, -1, true, false, false, false, true, 128)]
        [TestCase(4, 16, false, false, false, true, false, 48)]
        [TestCase(5, 40, true, true, false, false, true, 128)]
        public void QuantizeIsBitIdenticalToTheCLibrary(int bits, int group, bool sym, bool actOrder,
                                                        bool staticGroups, bool mse, bool f64, int block)
        {
            const int n = Layer.N, k = Layer.K, rows = 200;
            float[] x = Data.Activations(rows, k, 11);
            float[] w = Data.Weights(n, k, 12);
            const long samples = 7;

            gptq_config nc = Native.DefaultConfig();
            nc.bits = bits;
            nc.group_size = group;
            nc.sym = sym ? 1 : 0;
            nc.act_order = actOrder ? 1 : 0;
            nc.static_groups = staticGroups ? 1 : 0;
            nc.mse = mse ? 1 : 0;
            nc.precision = f64 ? Precision.F64 : Precision.F32;
            nc.block_size = block;
            nc.backend = Backend.Cpu;
            NativeResult want = Native.Quantize(nc, n, k, x, rows, samples, w);

            var cfg = new Config
            {
                Bits = bits, GroupSize = group, Sym = sym, ActOrder = actOrder, StaticGroups = staticGroups,
                Mse = mse, Precision = f64 ? Precision.F64 : Precision.F32, BlockSize = block, Backend = Backend.Cpu,
            };
            using (var ctx = new Context(n, k, cfg))
            {
                ctx.AddBatch(x, rows, samples);
                Assert.AreEqual(samples, ctx.Samples);
                QuantStats stats;
                using (QTensor q = ctx.Quantize(w, out stats))
                {
                    CollectionAssert.AreEqual(want.Codes, q.Codes(), "codes");
                    Bits.AssertIdentical(want.Dequantized, q.Dequantize(), "dequantized");
                    Assert.AreEqual(Bits.Of(want.Stats.loss), Bits.Of(stats.Loss), "loss " + stats.Loss);
                    Assert.AreEqual(want.Stats.damp_percent_used, stats.DampPercentUsed);
                    Assert.AreEqual(want.Stats.damp_retries, stats.DampRetries);
                    Assert.AreEqual(want.Stats.fell_back_to_rtn != 0, stats.FellBackToRtn);
                    Assert.AreEqual(want.Stats.dead_columns, stats.DeadColumns);
                    Assert.AreEqual(Backend.Cpu, stats.Backend);
                    Assert.Greater(stats.Loss, 0.0);

                    QTensorInfo info = q.Info;
                    Assert.AreEqual(n, info.OutFeatures);
                    Assert.AreEqual(k, info.InFeatures);
                    Assert.AreEqual(bits, info.Bits);
                    Assert.AreEqual(group, info.GroupSize);
                    Assert.AreEqual(want.Info.groups, info.Groups);
                    Assert.AreEqual(want.Info.act_order != 0, info.ActOrder);

                    if (want.QWeight != null)
                    {
                        CheckpointTensors t = q.Export(CheckpointFormat.V2);
                        CollectionAssert.AreEqual(want.QWeight, t.QWeight, "qweight");
                        CollectionAssert.AreEqual(want.QZeros, t.QZeros, "qzeros");
                        CollectionAssert.AreEqual(want.Scales, t.Scales, "scales");
                        CollectionAssert.AreEqual(want.GIdx, t.GIdx, "g_idx");
                    }
                }
            }
        }

        [Test]
        public void QuantizeAgainGivesTheSameResultAndLeavesTheHessian()
        {
            using (Context ctx = Layer.Calibrated(new Config { Backend = Backend.Cpu }))
            {
                long samples0;
                double[] h0 = ctx.ExportHessian(out samples0);
                float[] w = Data.Weights(Layer.N, Layer.K, 3);
                using (QTensor a = ctx.Quantize(w))
                using (QTensor b = ctx.Quantize(w))
                    CollectionAssert.AreEqual(a.Codes(), b.Codes());
                long samples1;
                Bits.AssertIdentical(h0, ctx.ExportHessian(out samples1), "Hessian");
                Assert.AreEqual(samples0, samples1);
            }
        }

        [Test]
        public void SpanOverloadsEqualArrayOverloads()
        {
            const int rows = 96;
            float[] x = Data.Activations(rows + 10, Layer.K, 4);
            float[] w = Data.Weights(Layer.N, Layer.K, 5);
            var padded = new float[w.Length + 7];
            Array.Copy(w, 0, padded, 7, w.Length);
            using (var a = new Context(Layer.N, Layer.K))
            using (var b = new Context(Layer.N, Layer.K))
            {
                var xs = new float[rows * Layer.K];
                Array.Copy(x, 5 * Layer.K, xs, 0, xs.Length);
                a.AddBatch(xs, rows, rows);
                b.AddBatch(new ReadOnlySpan<float>(x, 5 * Layer.K, rows * Layer.K), rows, rows);
                QuantStats sa, sb;
                using (QTensor qa = a.Quantize(w, out sa))
                using (QTensor qb = b.Quantize(new ReadOnlySpan<float>(padded, 7, w.Length), out sb))
                {
                    CollectionAssert.AreEqual(qa.Codes(), qb.Codes());
                    Assert.AreEqual(sa.Loss, sb.Loss);
                }
            }
        }

        [TestCase(Dtype.F16)]
        [TestCase(Dtype.BF16)]
        public void HalfInputsEqualTheirFloatValues(Dtype dtype)
        {
            const int rows = 64;
            float[] x = Data.HalfExact(rows * Layer.K, 6);
            float[] w = Data.HalfExact(Layer.N * Layer.K, 7);
            ushort[] xh = Half.Convert(x, dtype), wh = Half.Convert(w, dtype);
            CollectionAssert.AreEqual(x, Half.Back(xh, dtype), "test data is exact in " + dtype);
            using (var f = new Context(Layer.N, Layer.K))
            using (var h = new Context(Layer.N, Layer.K))
            {
                f.AddBatch(x, rows, 3);
                h.AddBatch(xh, dtype, rows, 3);
                long sf, sh;
                Bits.AssertIdentical(f.ExportHessian(out sf), h.ExportHessian(out sh), "Hessian");
                h.AddBatch(new ReadOnlySpan<ushort>(xh), dtype, rows, 1);
                f.AddBatch(x, rows, 1);
                QuantStats st;
                using (QTensor qf = f.Quantize(w))
                using (QTensor qh = h.Quantize(wh, dtype, out st))
                    CollectionAssert.AreEqual(qf.Codes(), qh.Codes());
            }
        }

        [Test]
        public void HessianExportImportAndMergeReproduceOneContext()
        {
            const int rows = 128;
            float[] x1 = Data.Activations(rows, Layer.K, 21), x2 = Data.Activations(rows, Layer.K, 22);
            float[] w = Data.Weights(Layer.N, Layer.K, 23);
            var cfg = new Config { Precision = Precision.F64 };
            using (var all = new Context(Layer.N, Layer.K, cfg))
            using (var a = new Context(Layer.N, Layer.K, cfg))
            using (var b = new Context(Layer.N, Layer.K, cfg))
            using (var imported = new Context(Layer.N, Layer.K, cfg))
            {
                all.AddBatch(x1, rows, 2);
                all.AddBatch(x2, rows, 2);
                a.AddBatch(x1, rows, 2);
                b.AddBatch(x2, rows, 2);
                a.Merge(b);
                Assert.AreEqual(4, a.Samples);
                Assert.AreEqual(2, b.Samples, "source unchanged");

                long sa, sall;
                double[] ha = a.ExportHessian(out sa), hall = all.ExportHessian(out sall);
                Assert.AreEqual(sall, sa);
                Assert.AreEqual(Layer.K * Layer.K, ha.Length);
                for (int i = 0; i < ha.Length; i++)
                    Assert.AreEqual(hall[i], ha[i], 1e-12 * (1 + Math.Abs(hall[i])), "H[" + i + "]");

                imported.ImportHessian(ha, sa);
                Assert.AreEqual(sa, imported.Samples);
                long si;
                Bits.AssertIdentical(ha, imported.ExportHessian(out si), "imported Hessian");
                using (QTensor qa = a.Quantize(w))
                using (QTensor qi = imported.Quantize(w))
                    CollectionAssert.AreEqual(qa.Codes(), qi.Codes());
            }
        }

        [Test]
        public void DeadColumnsAreReported()
        {
            const int rows = 64;
            float[] x = Data.Activations(rows, Layer.K, 31);
            for (int r = 0; r < rows; r++)
            {
                x[r * Layer.K + 3] = 0;
                x[r * Layer.K + 77] = 0;
            }
            using (var ctx = new Context(Layer.N, Layer.K))
            {
                ctx.AddBatch(x, rows, rows);
                QuantStats stats;
                using (ctx.Quantize(Data.Weights(Layer.N, Layer.K, 32), out stats))
                    Assert.AreEqual(2, stats.DeadColumns);
                StringAssert.Contains("dead columns", stats.ToString());
            }
        }
    }
}
