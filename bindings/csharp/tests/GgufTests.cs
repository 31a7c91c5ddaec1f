// GGUF grids: the exported block bytes decode to the tensor's dequantized weights.
using System;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class GgufTests
    {
        // Bytes per 256 weights (eight blocks of 32, or one K super-block), as the
        // header documents them.
        [TestCase(Grid.Q40, 8 * 18)]
        [TestCase(Grid.Q41, 8 * 20)]
        [TestCase(Grid.Q50, 8 * 22)]
        [TestCase(Grid.Q51, 8 * 24)]
        [TestCase(Grid.Q80, 8 * 34)]
        [TestCase(Grid.Q4K, 144)]
        [TestCase(Grid.Q5K, 176)]
        [TestCase(Grid.Q6K, 210)]
        public void ExportDecodesToTheDequantizedWeights(Grid grid, int bytesPer256)
        {
            const int n = 16, k = 512;
            using (QTensor q = Layer.Quantized(new Config { Grid = grid }, n, k))
            {
                Assert.AreEqual(grid, q.Grid);
                byte[] data = q.GgufExport();
                Assert.AreEqual((long)n * k / 256 * bytesPer256, data.LongLength);
                Assert.AreEqual(data.LongLength, Gguf.Size(grid, n, k));
                float[] decoded = Gguf.Dequantize(grid, data, n, k);
                float[] want = q.Dequantize();
                for (int i = 0; i < want.Length; ++i)
                    Assert.AreEqual(BitConverter.SingleToInt32Bits(want[i]),
                                    BitConverter.SingleToInt32Bits(decoded[i]), "weight " + i);
            }
        }

        [Test]
        public void Errors()
        {
            using (QTensor q = Layer.Quantized())
            {
                Assert.AreEqual(Grid.Gptq, q.Grid);
                var e = Assert.Throws<GptqException>(() => q.GgufExport());
                Assert.AreEqual(Status.ErrUnsupported, e.Status);
            }
            Assert.AreEqual(Status.ErrInvalidConfig,
                            Assert.Throws<GptqException>(() => Gguf.Size(Grid.Gptq, 1, 32)).Status);
            Assert.AreEqual(Status.ErrInvalidSize,
                            Assert.Throws<GptqException>(() => Gguf.Size(Grid.Q40, 1, 48)).Status);
            Assert.AreEqual(Status.ErrSizeMismatch,
                            Assert.Throws<GptqException>(() => Gguf.Dequantize(Grid.Q80, new byte[33], 1, 32)).Status);
            Assert.AreEqual(Status.ErrSizeMismatch,
                            Assert.Throws<GptqException>(() => Gguf.Dequantize(Grid.Q80, new byte[34], 1L << 30, 1L << 20)).Status);
            Assert.Throws<ArgumentNullException>(() => Gguf.Dequantize(Grid.Q80, null, 1, 32));
        }
    }
}
