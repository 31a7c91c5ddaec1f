// Quantize one linear layer with libgptq from C#, compare it with
// round-to-nearest, export it as GPTQ checkpoint tensors and run it.
//
//   mcs -r:Gptq.dll -out:Quantize.exe bindings/csharp/examples/Quantize.cs
//   LD_LIBRARY_PATH=<dir of libgptq.so> mono Quantize.exe
using System;
using Gptq;

namespace Gptq.Examples
{
    public static class QuantizeExample
    {
        private const int OutFeatures = 128, InFeatures = 512;

        public static int Main(string[] args)
        {
            Console.WriteLine("libgptq " + Library.Version + (Library.IsCompatible ? "" : " (incompatible!)"));
            var rng = new Random(1234);
            float[] weights = RandomMatrix(rng, OutFeatures, InFeatures, 0.02);
            // Calibration activations with a few strong, correlated channels, as
            // real layer inputs have; a held-out set to measure the result.
            float[] heldOut = Activations(rng, 256);

            var config = new Config
            {
                Bits = 4,
                GroupSize = 128,
                ActOrder = true,
                LogLevel = LogLevel.Info,
                Log = (level, message) => Console.WriteLine("  [" + level + "] " + message),
                Progress = (done, total) =>
                {
                    if (done == total || done % 256 == 0)
                        Console.WriteLine("  quantized " + done + " of " + total + " columns");
                    return true; // false would cancel
                },
            };

            QTensor gptq, rtn;
            QuantStats stats;
            using (var ctx = new Context(OutFeatures, InFeatures, config))
            {
                for (int batch = 0; batch < 4; batch++)
                    ctx.AddBatch(Activations(rng, 256), 256, 256); // per-token mean
                Console.WriteLine("calibrated on " + ctx.Samples + " tokens");
                gptq = ctx.Quantize(weights, out stats);
                Console.WriteLine("GPTQ: " + gptq.Info + "; " + stats);
            }

            // Round-to-nearest with the same groups: GPTQ with an identity Hessian
            // feeds no error forward.
            var rtnConfig = new Config { Bits = 4, GroupSize = 128 };
            using (var ctx = new Context(OutFeatures, InFeatures, rtnConfig))
            {
                var identity = new double[InFeatures * InFeatures];
                for (int i = 0; i < InFeatures; i++)
                    identity[i * InFeatures + i] = 1;
                ctx.ImportHessian(identity, 1);
                rtn = ctx.Quantize(weights);
            }

            using (gptq)
            using (rtn)
            {
                double[] exact = Reference(heldOut, 256, weights);
                double errGptq = RelativeError(exact, gptq.Matmul(heldOut, 256));
                double errRtn = RelativeError(exact, rtn.Matmul(heldOut, 256));
                Console.WriteLine(string.Format("GPTQ output error {0:E3}, RTN output error {1:E3} (relative squared error on held-out data)",
                                                errGptq, errRtn));

                CheckpointTensors t = gptq.Export(CheckpointFormat.V1);
                long bytes = 4L * (t.QWeight.Length + t.QZeros.Length + t.GIdx.Length) + 2L * t.Scales.Length;
                Console.WriteLine(string.Format(
                    "checkpoint (format v1): qweight [{0}, {1}], qzeros [{2}, {3}], scales [{4}, {5}], g_idx [{6}]: {7} bytes vs {8} as float32",
                    t.Sizes.QWeightRows, t.Sizes.QWeightCols, t.Sizes.QZerosRows, t.Sizes.QZerosCols,
                    t.Sizes.ScalesRows, t.Sizes.ScalesCols, t.Sizes.GIdxLength, bytes, 4L * weights.Length));

                using (QTensor loaded = QTensor.Import(t))
                {
                    float[] a = gptq.Matmul(heldOut, 256), b = loaded.Matmul(heldOut, 256);
                    bool same = true;
                    for (int i = 0; i < a.Length; i++)
                        same &= a[i] == b[i];
                    Console.WriteLine("re-imported checkpoint gives " + (same ? "identical" : "DIFFERENT") + " outputs");
                    if (!same || !(errGptq < errRtn))
                        return 1;
                }
            }

            try
            {
                using (var ctx = new Context(OutFeatures, InFeatures, new Config { Bits = 9 }))
                {
                }
            }
            catch (GptqException e)
            {
                Console.WriteLine("as expected, bits 9 fails: " + e.Status + ": " + e.Message);
            }
            return 0;
        }

        private static float[] RandomMatrix(Random rng, int rows, int cols, double sigma)
        {
            var m = new float[rows * cols];
            for (int i = 0; i < m.Length; i++)
                m[i] = (float)(sigma * Gaussian(rng));
            return m;
        }

        // Real layer inputs are far from white noise: they live near a
        // low-dimensional subspace and a few channels are much larger. That
        // structure is what GPTQ exploits and round-to-nearest ignores.
        private const int Factors = 24;
        private static float[] mixing;

        private static float[] Activations(Random rng, int rows)
        {
            if (mixing == null)
                mixing = RandomMatrix(new Random(99), Factors, InFeatures, 1.0);
            var x = new float[rows * InFeatures];
            var z = new double[Factors];
            for (int r = 0; r < rows; r++)
            {
                for (int f = 0; f < Factors; f++)
                    z[f] = Gaussian(rng);
                for (int c = 0; c < InFeatures; c++)
                {
                    double v = 0.2 * Gaussian(rng);
                    for (int f = 0; f < Factors; f++)
                        v += z[f] * mixing[f * InFeatures + c];
                    x[r * InFeatures + c] = (float)(c % 64 == 0 ? 6 * v : v);
                }
            }
            return x;
        }

        private static double Gaussian(Random rng)
        {
            return Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        }

        private static double[] Reference(float[] x, int rows, float[] w)
        {
            var y = new double[rows * OutFeatures];
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < OutFeatures; o++)
                {
                    double s = 0;
                    for (int j = 0; j < InFeatures; j++)
                        s += (double)x[r * InFeatures + j] * w[o * InFeatures + j];
                    y[r * OutFeatures + o] = s;
                }
            return y;
        }

        private static double RelativeError(double[] exact, float[] y)
        {
            double num = 0, den = 0;
            for (int i = 0; i < y.Length; i++)
            {
                num += (y[i] - exact[i]) * (y[i] - exact[i]);
                den += exact[i] * exact[i];
            }
            return num / den;
        }
    }
}
