// Export to the GPTQ checkpoint layout and import back.
using System;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class CheckpointTests
    {
        [TestCase(4, 32, true, false, CheckpointFormat.V1)]
        [TestCase(4, 32, true, false, CheckpointFormat.V2)]
        [TestCase(3, 64, false, true, CheckpointFormat.V2)]
        [TestCase(2, -1, true, false, CheckpointFormat.V1)]
        [TestCase(8, 128, false, true, CheckpointFormat.V2)]
        public void ExportImportRoundTrip(int bits, int group, bool sym, bool actOrder, CheckpointFormat format)
        {
            var cfg = new Config { Bits = bits, GroupSize = group, Sym = sym, ActOrder = actOrder };
            using (QTensor q = Layer.Quantized(cfg))
            {
                CheckpointTensors t = q.Export(format);
                CheckpointSizes s = q.CheckpointSizes;
                Assert.AreEqual(Layer.K * bits / 32, s.QWeightRows);
                Assert.AreEqual(Layer.N, s.QWeightCols);
                Assert.AreEqual(q.Info.Groups, s.QZerosRows);
                Assert.AreEqual(Layer.N * bits / 32, s.QZerosCols);
                Assert.AreEqual(q.Info.Groups, s.ScalesRows);
                Assert.AreEqual(Layer.N, s.ScalesCols);
                Assert.AreEqual(Layer.K, s.GIdxLength);
                Assert.AreEqual(s.QWeightLength, t.QWeight.Length);
                Assert.AreEqual(s.QZerosLength, t.QZeros.Length);
                Assert.AreEqual(s.ScalesLength, t.Scales.Length);
                Assert.AreEqual(Layer.K, t.GIdx.Length);
                Assert.AreEqual(format, t.Format);
                Assert.AreEqual(bits, t.Bits);
                Assert.AreEqual(group, t.GroupSize);

                using (QTensor back = QTensor.Import(t))
                {
                    Assert.AreEqual(q.Info.Groups, back.Info.Groups);
                    Assert.AreEqual(q.Info.ActOrder, back.Info.ActOrder);
                    CollectionAssert.AreEqual(q.Codes(), back.Codes(), "codes");
                    Bits.AssertIdentical(q.Dequantize(), back.Dequantize(), "dequantized");
                    CheckpointTensors again = back.Export(format);
                    CollectionAssert.AreEqual(t.QWeight, again.QWeight);
                    CollectionAssert.AreEqual(t.QZeros, again.QZeros);
                    CollectionAssert.AreEqual(t.Scales, again.Scales);
                    CollectionAssert.AreEqual(t.GIdx, again.GIdx);
                }
                using (QTensor explicitShape = QTensor.Import(Layer.N, Layer.K, bits, group, format,
                           new CheckpointTensors { QWeight = t.QWeight, QZeros = t.QZeros, Scales = t.Scales, GIdx = t.GIdx }))
                    CollectionAssert.AreEqual(q.Codes(), explicitShape.Codes());
            }
        }

        [Test]
        public void ImportWithoutGIdxMeansColumnOverGroupSize()
        {
            using (QTensor q = Layer.Quantized(new Config { GroupSize = 32 }))
            {
                CheckpointTensors t = q.Export(CheckpointFormat.V1);
                for (int j = 0; j < t.GIdx.Length; j++)
                    Assert.AreEqual(j / 32, t.GIdx[j]);
                t.GIdx = null;
                using (QTensor back = QTensor.Import(t))
                    CollectionAssert.AreEqual(q.Codes(), back.Codes());
            }
        }

        [Test]
        public void CheckpointSizesForGivesTheLayout()
        {
            CheckpointSizes s = CheckpointSizes.For(64, 256, 3, 128);
            Assert.AreEqual(256 * 3 / 32, s.QWeightRows);
            Assert.AreEqual(64, s.QWeightCols);
            Assert.AreEqual(2, s.QZerosRows);
            Assert.AreEqual(64 * 3 / 32, s.QZerosCols);
            Assert.AreEqual(2 * 64, s.ScalesLength);
            Assert.AreEqual(256, s.GIdxLength);
            var e = Assert.Throws<GptqException>(() => CheckpointSizes.For(64, 100, 4, 32));
            Layer.AssertLibraryMessage(e, Status.ErrUnsupported, "in_features 100");
        }

        [Test]
        public void ImportRejectsBadData()
        {
            using (QTensor q = Layer.Quantized(new Config { GroupSize = 32 }))
            {
                CheckpointTensors t = q.Export(CheckpointFormat.V2);
                t.GIdx[5] = 99;
                var e = Assert.Throws<GptqException>(() => QTensor.Import(t));
                Layer.AssertLibraryMessage(e, Status.ErrInvalidData, "g_idx[5]");

                t = q.Export(CheckpointFormat.V2);
                t.Scales = new ushort[t.Scales.Length - 1];
                e = Assert.Throws<GptqException>(() => QTensor.Import(t));
                Layer.AssertLibraryMessage(e, Status.ErrSizeMismatch, "scales");

                t = q.Export(CheckpointFormat.V2);
                t.QWeight = null;
                e = Assert.Throws<GptqException>(() => QTensor.Import(t));
                Layer.AssertLibraryMessage(e, Status.ErrNullPointer, "qweight");

                t = q.Export(CheckpointFormat.V2);
                t.Bits = 9;
                e = Assert.Throws<GptqException>(() => QTensor.Import(t));
                Layer.AssertLibraryMessage(e, Status.ErrInvalidConfig, "bits");
            }
        }
    }
}
