// Plain results: quantization statistics, tensor info, checkpoint shapes and buffers.
using System;

namespace Gptq
{
    /// <summary>What Quantize reports (gptq_quant_stats).</summary>
    public struct QuantStats
    {
        /// <summary>Σ (w - q)² / U_jj² / 2, the reference implementation's "error".</summary>
        public double Loss { get; }
        /// <summary>damp_percent finally used (>= the configured one after retries).</summary>
        public double DampPercentUsed { get; }
        /// <summary>Failed Cholesky attempts before success or fallback.</summary>
        public int DampRetries { get; }
        /// <summary>Every factorization failed and the layer was rounded to nearest.</summary>
        public bool FellBackToRtn { get; }
        /// <summary>Input columns whose Hessian diagonal was 0.</summary>
        public long DeadColumns { get; }
        /// <summary>Wall-clock seconds spent in gptq_quantize.</summary>
        public double Seconds { get; }
        /// <summary>The backend that did the work (Cpu or Cuda, never Auto).</summary>
        public Backend Backend { get; }

        internal QuantStats(gptq_quant_stats s)
        {
            Loss = s.loss;
            DampPercentUsed = s.damp_percent_used;
            DampRetries = s.damp_retries;
            FellBackToRtn = s.fell_back_to_rtn != 0;
            DeadColumns = s.dead_columns;
            Seconds = s.seconds;
            Backend = s.backend;
        }

        public override string ToString()
        {
            return string.Format("loss {0:G6}, damp {1:G4} ({2} retries){3}, {4} dead columns, {5:F3} s on {6}",
                Loss, DampPercentUsed, DampRetries, FellBackToRtn ? ", fell back to RTN" : "",
                DeadColumns, Seconds, Backend);
        }
    }

    /// <summary>Shape and parameters of a quantized tensor (gptq_qtensor_info).</summary>
    public struct QTensorInfo
    {
        /// <summary>N: rows of the original weight.</summary>
        public long OutFeatures { get; }
        /// <summary>K: columns of the original weight.</summary>
        public long InFeatures { get; }
        public int Bits { get; }
        /// <summary>As configured; -1 for one group.</summary>
        public int GroupSize { get; }
        /// <summary>G: number of scale/zero rows.</summary>
        public long Groups { get; }
        /// <summary>True if g_idx is not j / group_size (act-order without static groups).</summary>
        public bool ActOrder { get; }

        internal QTensorInfo(gptq_qtensor_info i)
        {
            OutFeatures = i.out_features;
            InFeatures = i.in_features;
            Bits = i.bits;
            GroupSize = i.group_size;
            Groups = i.groups;
            ActOrder = i.act_order != 0;
        }

        public override string ToString()
        {
            return string.Format("[{0} x {1}] {2}-bit, group {3} ({4} groups){5}",
                OutFeatures, InFeatures, Bits, GroupSize, Groups, ActOrder ? ", act-order" : "");
        }
    }

    /// <summary>Element counts of the four checkpoint tensors (gptq_checkpoint_sizes).</summary>
    public struct CheckpointSizes
    {
        public long QWeightRows { get; }
        public long QWeightCols { get; }
        public long QZerosRows { get; }
        public long QZerosCols { get; }
        public long ScalesRows { get; }
        public long ScalesCols { get; }
        public long GIdxLength { get; }

        public long QWeightLength { get { return QWeightRows * QWeightCols; } }
        public long QZerosLength { get { return QZerosRows * QZerosCols; } }
        public long ScalesLength { get { return ScalesRows * ScalesCols; } }

        internal CheckpointSizes(gptq_checkpoint_sizes s)
        {
            QWeightRows = s.qweight_rows;
            QWeightCols = s.qweight_cols;
            QZerosRows = s.qzeros_rows;
            QZerosCols = s.qzeros_cols;
            ScalesRows = s.scales_rows;
            ScalesCols = s.scales_cols;
            GIdxLength = s.g_idx_len;
        }

        /// <summary>
        /// The sizes the checkpoint tensors of a [outFeatures, inFeatures] tensor
        /// with these bits and group size have (gptq_checkpoint_sizes_for).
        /// </summary>
        public static unsafe CheckpointSizes For(long outFeatures, long inFeatures, int bits, int groupSize)
        {
            gptq_checkpoint_sizes s;
            GptqException.Check(NativeMethods.gptq_checkpoint_sizes_for(outFeatures, inFeatures, bits, groupSize, &s));
            return new CheckpointSizes(s);
        }
    }

    /// <summary>
    /// The four tensors of a GPTQ checkpoint layer, row-major, as transformers,
    /// vLLM and GPTQModel store them: qweight int32 [K·b/32, N], qzeros int32
    /// [G, N·b/32], scales fp16 [G, N] (as ushort bit patterns), g_idx int32 [K].
    /// Made by <see cref="QTensor.Export"/>, read by <see cref="QTensor.Import(CheckpointTensors)"/>.
    /// </summary>
    public sealed class CheckpointTensors
    {
        public int[] QWeight { get; set; }
        public int[] QZeros { get; set; }
        public ushort[] Scales { get; set; }
        /// <summary>May be null for import, meaning j / group_size.</summary>
        public int[] GIdx { get; set; }

        /// <summary>Shape of the layer: N.</summary>
        public long OutFeatures { get; set; }
        /// <summary>Shape of the layer: K.</summary>
        public long InFeatures { get; set; }
        public int Bits { get; set; }
        public int GroupSize { get; set; }
        /// <summary>How zeros are stored (V1: zero - 1; V2: zero).</summary>
        public CheckpointFormat Format { get; set; }

        public CheckpointTensors()
        {
        }

        public CheckpointTensors(long outFeatures, long inFeatures, int bits, int groupSize, CheckpointFormat format,
                                 int[] qweight, int[] qzeros, ushort[] scales, int[] gIdx)
        {
            OutFeatures = outFeatures;
            InFeatures = inFeatures;
            Bits = bits;
            GroupSize = groupSize;
            Format = format;
            QWeight = qweight;
            QZeros = qzeros;
            Scales = scales;
            GIdx = gIdx;
        }

        /// <summary>The element counts of these tensors' shape (gptq_checkpoint_sizes_for).</summary>
        public CheckpointSizes Sizes
        {
            get { return CheckpointSizes.For(OutFeatures, InFeatures, Bits, GroupSize); }
        }
    }
}
