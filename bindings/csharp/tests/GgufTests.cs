// GGUF grids: the exported block bytes decode to the tensor's dequantized weights.
using System;
using NUnit.Framework;

namespace Gptq.Tests
{
    [TestFixture]
    public class GgufTests
    {
        // Bytes per block of 32 weights, as the header documents them.
        [TestCase(Grid.Q40, 18)]
        [TestCase(Grid.Q41, 20)]
        [TestCase(Grid.Q50, 22)]
        [TestCase(Grid.Q51, 24)]
        [TestCase(Grid.Q80, 34)]
        public void ExportDecodesToTheDequantizedWeights(Grid grid, int blockBytes)
        {
            using (QTensor q = Layer.Quantized(new Config { Grid = grid }))
            {
                Assert.AreEqual(grid, q.Grid);
                byte[] data = q.GgufExport();
                Assert.AreEqual((long)Layer.N * Layer.K / 32 * blockBytes, data.LongLength);
                Assert.AreEqual(data.LongLength, Gguf.Size(grid, Layer.N, Layer.K));
                float[] decoded = Gguf.Dequantize(grid, data, Layer.N, Layer.K);
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
