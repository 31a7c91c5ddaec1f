// gptq: whole-model GPTQ for LLaMA-family Hugging Face models, built only on
// the public C API of libgptq.
//
//   gptq quantize  --model DIR --out DIR --calib TEXT ...   write a GPTQ checkpoint
//                  (or --format gguf: one llama.cpp GGUF file)
//   gptq eval      --model DIR [--quantized DIR ...] [--gguf FILE ...] --text TEXT
//                                                     perplexity: original, RTN, GPTQ, GGUF
//   gptq logits    --model DIR --ids FILE --out FILE.npy
//   gptq generate  --model DIR --prompt TEXT ...           text, with a KV cache
//   gptq bench     --model DIR ...                         prefill / decode speed
//
// Run `gptq <command> --help` for the options.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <climits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/run_options.h"
#include "common/interrupt.h"
#include "formats/calibration_records.h"
#include "formats/checkpoint_reader.h"
#include "formats/checkpoint_writer.h"
#include "formats/file_util.h"
#include "formats/gguf_model_reader.h"
#include "formats/gguf_model_writer.h"
#include "formats/gguf_reader.h"
#include "formats/output_guard.h"
#include "formats/token_data.h"
#include "model/hub_cache.h"
#include "model/llama_forward.h"
#include "model/model_dir.h"
#include "pipeline/perplexity.h"
#include "tokenizer/tokenizer.h"

using namespace gptqtool;

namespace {

const char kUsage[] =
    "usage: gptq <command> [options]\n"
    "\n"
    "commands:\n"
    "  quantize   quantize a LLaMA-family model directory and write a GPTQ checkpoint\n"
    "             or a llama.cpp GGUF file\n"
    "  eval       perplexity of a model, its GPTQ checkpoints, GGUF files and\n"
    "             round-to-nearest\n"
    "  logits     write a model's logits for a token sequence as a .npy file\n"
    "  generate   generate text from a model or checkpoint (greedy or sampled, --chat)\n"
    "  bench      prefill and decode speed and latency per batch size\n"
    "\n"
    "gptq <command> --help lists the options; gptq --version prints the versions.\n";

const char kQuantizeUsage[] =
    "usage: gptq quantize --model DIR --out DIR (--calib F | --calib-jsonl F | --calib-ids F)...\n"
    "                     [options]\n"
    "\n"
    "  --model DIR         Hugging Face model directory (LLaMA, Mistral, Qwen2, Qwen3,\n"
    "                      SmolLM, Phi-3, Gemma 2, Gemma 3), or org/name[@revision] already\n"
    "                      in the Hugging Face cache (HF_HUB_CACHE or HF_HOME; nothing\n"
    "                      is downloaded)\n"
    "  --out DIR           checkpoint directory to create (written atomically)\n"
    "  --calib FILE        calibration text (UTF-8, may be .gz), tokenized with the model's\n"
    "                      tokenizer.json; repeatable\n"
    "  --calib-jsonl FILE  calibration records: JSON Lines or a JSON array (may be .gz);\n"
    "                      each an object with a text field, or with \"messages\"\n"
    "                      (chat, rendered with the model's chat template), or a\n"
    "                      string; each record tokenized on its own; repeatable\n"
    "  --text-field NAME   the text field of --calib-jsonl records (default text)\n"
    "  --calib-ids FILE    pre-tokenized calibration ids (whitespace separated); repeatable\n"
    "                      (files of all kinds mix: --calib, then --calib-jsonl,\n"
    "                      then --calib-ids, each in the order given)\n"
    "  --samples N         calibration sequences (default 128)\n"
    "  --seqlen N          tokens per calibration sequence (default 512)\n"
    "  --seed N            cut the sequences at random places (disjoint; the same N\n"
    "                      gives the same sequences everywhere) instead of evenly\n"
    "                      spaced over the text\n"
    "  --save-calib-ids F  also write the calibration sequences, one per line, as ids\n"
    "                      (what --calib-ids reads), once the checkpoint is written\n"
    "  --bits N            2, 3, 4 or 8 (default 4; GPTQ checkpoints hold no other)\n"
    "  --group N           columns per group, -1 for one group (default 128)\n"
    "  --asym              asymmetric quantization (default symmetric)\n"
    "  --act-order         quantize columns by descending Hessian diagonal; g_idx then\n"
    "                      follows that order (desc_act), which vLLM refuses\n"
    "  --act-group-aware   act-order that keeps each group's columns together: groups\n"
    "                      by their largest diagonal, columns by diagonal within a\n"
    "                      group; g_idx stays trivial (desc_act false), as GPTQModel\n"
    "  --static-groups     group parameters fixed before the loop (needs an act-order)\n"
    "  --damp F            damping as a fraction of mean(diag H) (default 0.01)\n"
    "  --mse, --no-mse     search each group's clipping range for the least error\n"
    "                      (GPTQ: on by default, about 1.6x the time; rtn: off)\n"
    "  --precision P       f32 (default, as the reference GPTQ) or f64: the Hessian,\n"
    "                      its factorization and the loop in double precision (slower;\n"
    "                      the codes then depend far less on summation order)\n"
    "  --quantize-lm-head  also quantize lm_head (override name: lm_head); a tied\n"
    "                      lm_head is written as a tensor of its own. GPTQModel\n"
    "                      loads such checkpoints; transformers' GPTQ path does not\n"
    "  --expert-min-share F\n"
    "                      mixtures of experts: an expert routed fewer calibration\n"
    "                      tokens than F times its fair share (tokens x experts per\n"
    "                      token / experts) is rounded to nearest instead, and named\n"
    "                      in the report (default 0.1; 0 ..= 1)\n"
    "  --expert-names N    Mixtral: model (default; block_sparse_moe.experts.E.w1,\n"
    "                      what transformers saves) or gptqmodel (mlp.experts.E.gate_proj,\n"
    "                      what GPTQModel 7 loads under transformers 5)\n"
    "  --override P:S      per-layer settings for layers whose name matches the glob P:\n"
    "                      S is 'skip' or bits=N,group=N,sym=0|1,act-order=0|1,\n"
    "                      act-group-aware=0|1,damp=F;\n"
    "                      repeatable, later ones win; each must match a layer.\n"
    "                      E.g. 'model.layers.0.*:bits=8'\n"
    "  --method M          gptq (default) or rtn (round-to-nearest; takes no --calib,\n"
    "                      --calib-ids, --samples or --seqlen)\n"
    "  --format F          auto (default: v1 if symmetric, else v2), v1 or v2; or gguf:\n"
    "                      one llama.cpp GGUF file at --out, GPTQ run on the grid of\n"
    "                      --gguf-type (LLaMA, Mistral, Qwen2 with a byte-level BPE\n"
    "                      tokenizer; no --bits, --group, --asym, --mse, --override)\n"
    "  --gguf-type T       with --format gguf: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,\n"
    "                      Q5_K, Q6_K, or llama.cpp's mixes Q4_K_M and Q5_K_M (attn_v\n"
    "                      and ffn_down of some layers Q6_K); K-quant layers whose\n"
    "                      width is not a multiple of 256 fall back as in llama.cpp\n"
    "                      (Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0)\n"
    "  --dtype D           dtype of the tensors left unquantized (embeddings, norms,\n"
    "                      biases): auto (default: bf16 if the model is bf16, else f16),\n"
    "                      f16, bf16 or f32; scales are always f16\n"
    "  --max-shard-size S  largest safetensors file (default 4GB; KB/MB/GB are powers\n"
    "                      of 1000, KiB/MiB/GiB of 1024): larger checkpoints are split\n"
    "                      into model-0000N-of-0000M.safetensors with an index\n"
    "  --overwrite         replace an existing --out checkpoint written by gptq (with\n"
    "                      --format gguf: an existing GGUF file)\n"
    "                      (nothing else is ever replaced)\n"
    "  --threads N         threads for the library's loops (default: all cores)\n"
    "  --backend B         where the library computes: auto (default: the GPU when the\n"
    "                      CUDA backend is usable, else the CPU), cpu or cuda\n"
    "  --quiet             no per-layer lines\n";

const char kEvalUsage[] =
    "usage: gptq eval --model DIR [--quantized DIR]... [--gguf FILE]... (--text FILE | --ids FILE)\n"
    "                 [options]\n"
    "\n"
    "  --model DIR         the original model (also supplies the tokenizer)\n"
    "  --quantized DIR     a GPTQ checkpoint of it; repeatable. Each is also compared\n"
    "                      with round-to-nearest at the same settings\n"
    "  --gguf FILE         a llama.cpp GGUF of it (ours, or llama.cpp's own in Q4_0, Q4_1,\n"
    "                      Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K tensors: Q4_K_M and\n"
    "                      Q5_K_M too), dequantized and run by our forward pass;\n"
    "                      repeatable\n"
    "  --text FILE         evaluation text (UTF-8, may be .gz)\n"
    "  --ids FILE          or pre-tokenized ids\n"
    "  --ctx N             context length per window (default 512)\n"
    "  --stride N          window stride (default = --ctx: disjoint windows)\n"
    "  --max-tokens N      use only the first N tokens of the text\n"
    "  --no-rtn            skip the round-to-nearest rows\n"
    "  --json FILE         also write the results as JSON\n"
    "  --threads N         threads for the library's loops (default: all cores)\n"
    "  --backend B         where quantized layers are multiplied: auto (default), cpu\n"
    "                      or cuda\n";

const char kLogitsUsage[] =
    "usage: gptq logits --model DIR (--ids FILE | --text STRING) --out FILE.npy\n"
    "\n"
    "  Runs one sequence through the model (original or GPTQ checkpoint) and writes\n"
    "  float32 logits [tokens, vocab] in NumPy .npy format.\n"
    "\n"
    "  --backend B         where quantized layers are multiplied: auto (default), cpu\n"
    "                      or cuda\n";

bool wants_help(int argc, char **argv) {
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

std::string shape_text(const LayerResult &l) {
  return std::to_string(l.out_features) + "x" + std::to_string(l.in_features);
}

// -------------------------------------------------------------- quantize

int cmd_quantize(int argc, char **argv, const std::atomic<bool> *interrupted) {
  CliArgs args(argc, argv, 2,
               {"model", "out", "calib", "calib-ids", "calib-jsonl", "text-field", "samples",
                "seqlen", "seed",
                "save-calib-ids", "bits", "group", "damp", "override", "method", "format",
                "dtype", "max-shard-size", "threads", "backend", "gguf-type", "expert-min-share",
                "expert-names", "precision"},
               {"asym", "act-order", "act-group-aware", "static-groups", "mse", "no-mse", "overwrite",
                "quiet", "quantize-lm-head"});
  choose_backend(args);
  const std::string model_path = resolve_model_path(args.required("model"), "--model");
  const std::string out_path = args.required("out");
  QuantizeOptions qo;
  qo.interrupted = interrupted;
  qo.base.bits = static_cast<int32_t>(args.get_int("bits", 4, 2, 8));
  qo.base.group_size = static_cast<int32_t>(args.get_int("group", 128, -1, 1 << 30));
  qo.base.sym = !args.flag("asym");
  qo.base.act_order = args.flag("act-order");
  qo.base.act_group_aware = args.flag("act-group-aware");
  if (qo.base.act_order && qo.base.act_group_aware) {
    throw ToolError("--act-order and --act-group-aware are two different column orders; "
                    "choose one");
  }
  qo.base.static_groups = args.flag("static-groups");
  qo.base.damp_percent = args.get_double("damp", 0.01, 0.0, 0.999999);
  if (args.flag("mse") && args.flag("no-mse")) throw ToolError("--mse and --no-mse contradict");
  const bool gguf_format = args.get("format", "auto") == "gguf";
  // GPTQ searches clipping ranges unless told not to (bench/RESULTS.md, quality
  // against GPTQModel: 3.8% lower perplexity at 4 bits); round-to-nearest is
  // plain unless asked, and GGUF blocks fix their own grid.
  qo.base.mse = args.flag("mse") ||
                (!args.flag("no-mse") && !gguf_format && args.get("method", "gptq") == "gptq");
  const std::string precision = args.get("precision", "f32");
  if (precision == "f64") {
    qo.base.precision = GPTQ_PRECISION_F64;
  } else if (precision != "f32") {
    throw ToolError("--precision must be f32 or f64, not '" + precision + "'");
  }
  qo.num_threads = static_cast<int32_t>(args.get_int("threads", 0, 0, 4096));
  qo.quantize_lm_head = args.flag("quantize-lm-head");
  qo.expert_min_share = args.get_double("expert-min-share", kDefaultExpertMinShare, 0.0, 1.0);
  for (const std::string &o : args.all("override")) qo.overrides.push_back(parse_override(o));
  const std::string method = args.get("method", "gptq");
  if (method == "gptq") {
    qo.method = QuantMethod::Gptq;
  } else if (method == "rtn") {
    qo.method = QuantMethod::Rtn;
  } else {
    throw ToolError("--method must be gptq or rtn, not '" + method + "'");
  }
  // Options that would be silently ignored are refused, before any work.
  if (qo.method == QuantMethod::Rtn) {
    for (const char *calibration_option :
         {"calib", "calib-ids", "calib-jsonl", "text-field", "samples", "seqlen", "seed",
          "save-calib-ids"}) {
      if (args.has(calibration_option)) {
        throw ToolError(std::string("--") + calibration_option +
                        " is calibration, which --method rtn does not use (round-to-nearest "
                        "needs no data); drop it or use --method gptq");
      }
    }
    if (args.has("precision")) {
      throw ToolError("--precision is that of GPTQ's Hessian and loop, which --method rtn does "
                      "not have; drop it or use --method gptq");
    }
  } else if (!args.has("calib") && !args.has("calib-ids") && !args.has("calib-jsonl")) {
    throw ToolError("GPTQ needs calibration data: pass --calib FILE, --calib-jsonl FILE or "
                    "--calib-ids FILE");
  }
  if (args.has("text-field") && !args.has("calib-jsonl")) {
    throw ToolError("--text-field names the text of --calib-jsonl records; there is no "
                    "--calib-jsonl");
  }
  // --format gguf: GPTQ on a GGUF grid, which fixes what these choose.
  const GgufType *gguf = nullptr;
  if (gguf_format) {
    if (!args.has("gguf-type"))
      throw ToolError("--format gguf needs --gguf-type (" + gguf_type_list() + ")");
    gguf = &gguf_type_named(args.get("gguf-type", ""));
    for (const char *fixed :
         {"bits", "group", "asym", "mse", "no-mse", "override", "quantize-lm-head"}) {
      if (args.has(fixed) || args.flag(fixed)) {
        throw ToolError(std::string("--") + fixed + " does not apply to --format gguf: the " +
                        gguf->name + " blocks fix the grid, and every linear layer is written "
                        "in them");
      }
    }
    for (const char *safetensors_only : {"dtype", "max-shard-size"}) {
      if (args.has(safetensors_only)) {
        throw ToolError(std::string("--") + safetensors_only +
                        " applies to safetensors checkpoints, not to --format gguf");
      }
    }
    if (qo.base.act_order && !qo.base.static_groups) {
      throw ToolError("--act-order without --static-groups scatters a block's columns, but a GGUF "
                      "block is 32 consecutive columns: add --static-groups or use "
                      "--act-group-aware");
    }
    qo.base.grid = gguf->grid;
    qo.base.bits = grid_bits(gguf->grid);
    qo.base.group_size = grid_group(gguf->grid);
  } else if (args.has("gguf-type")) {
    throw ToolError("--gguf-type needs --format gguf");
  }
  validate_options(qo);
  CheckpointOptions co;
  co.interrupted = interrupted;
  co.overwrite = args.flag("overwrite");
  co.tool_version = gptq_version_string();
  const std::string format = args.get("format", "auto");
  if (format == "auto") {
    co.format = CheckpointOptions::Format::Auto;
  } else if (format == "v1") {
    co.format = CheckpointOptions::Format::V1;
  } else if (format == "v2") {
    co.format = CheckpointOptions::Format::V2;
  } else if (format != "gguf") {
    throw ToolError("--format must be auto, v1, v2 or gguf, not '" + format + "'");
  }
  const std::string dtype = args.get("dtype", "auto");
  if (dtype == "auto") {
    co.dtype = CheckpointOptions::DType::Auto;
  } else if (dtype == "f16") {
    co.dtype = CheckpointOptions::DType::F16;
  } else if (dtype == "bf16") {
    co.dtype = CheckpointOptions::DType::BF16;
  } else if (dtype == "f32") {
    co.dtype = CheckpointOptions::DType::F32;
  } else {
    throw ToolError("--dtype must be auto, f16, bf16 or f32, not '" + dtype + "'");
  }
  co.max_shard_bytes = parse_byte_size(args.get("max-shard-size", "4GB"), "--max-shard-size");
  const std::string expert_names = args.get("expert-names", "model");
  if (expert_names != "model" && expert_names != "gptqmodel") {
    throw ToolError("--expert-names must be model or gptqmodel, not '" + expert_names + "'");
  }
  co.gptqmodel_expert_names = expert_names == "gptqmodel";
  // Before any work: the output must leave every input alone, and only a
  // checkpoint of ours may be replaced.
  co.inputs = args.all("calib");
  for (const std::string &f : args.all("calib-ids")) co.inputs.push_back(f);
  for (const std::string &f : args.all("calib-jsonl")) co.inputs.push_back(f);
  std::vector<std::string> inputs = co.inputs;
  inputs.push_back(model_path);
  check_apart_from_inputs("--out", out_path, inputs);
  if (gguf == nullptr) {
    check_checkpoint_output(out_path, co.overwrite);
  } else if (path_exists(out_path)) {
    if (!co.overwrite)
      throw ToolError("--out " + out_path + " exists; --overwrite replaces a GGUF file");
    if (!is_gguf_file(out_path))
      throw ToolError("--out " + out_path + " is not a GGUF file; --overwrite replaces only those");
  }
  check_output_parent("--out", out_path);
  const std::string save_calib_path = args.get("save-calib-ids", "");
  if (!save_calib_path.empty()) {
    std::vector<std::string> taken = inputs;
    taken.push_back(out_path);
    check_apart_from_inputs("--save-calib-ids", save_calib_path, taken);
    check_output_parent("--save-calib-ids", save_calib_path);
  }
  std::optional<uint64_t> seed;
  if (args.has("seed")) {
    seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
  }

  auto dir = ModelDir::open(model_path);
  check_llama_tensors(*dir);
  if (gguf != nullptr) {
    check_gguf_representable(*dir, *gguf);
    // The layers whose grid llama.cpp's rules for the type set apart from
    // the type's own (mixes, fallbacks for widths), as per-layer settings.
    const LlamaConfig &mc = dir->config();
    for (int64_t b = 0; b < mc.num_hidden_layers; ++b)
      for (const LinearSlot slot : block_slots(mc)) {
        const gptq_grid grid = gguf_linear_grid(*gguf, mc, b, slot);
        if (grid == gguf->grid) continue;
        SpecOverride o;
        o.pattern = linear_name(b, slot);
        o.text = o.pattern + ": " + grid_name(grid) + " by llama.cpp's rules for " + gguf->name;
        o.grid = grid;
        o.bits = grid_bits(grid);
        o.group_size = grid_group(grid);
        qo.overrides.push_back(o);
      }
  }
  validate_plan(*dir, qo);
  const LlamaConfig &c = dir->config();
  if (co.gptqmodel_expert_names && !c.mixtral_names) {
    throw ToolError("--expert-names gptqmodel renames Mixtral's block_sparse_moe experts; " +
                    c.architecture + (c.moe() ? "'s expert names are GPTQModel's already"
                                              : " has no experts") + "; drop it");
  }
  std::printf("model: %s (%s, %lld blocks, hidden %lld, %lld heads / %lld KV heads)\n",
              model_path.c_str(), c.architecture.c_str(),
              static_cast<long long>(c.num_hidden_layers), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.num_attention_heads),
              static_cast<long long>(c.num_key_value_heads));
  if (gguf != nullptr) {
    std::string counts;
    for (const auto &[name, count] : gguf_grid_counts(*gguf, c))
      counts += (counts.empty() ? "" : ", ") + std::to_string(count) + " " + name;
    std::printf("GGUF %s: matrices in %s (llama.cpp's rules for the type)\n", gguf->name.c_str(),
                counts.c_str());
  }
  std::printf("unquantized tensors will be written as %s\n",
              dtype_name(unquantized_dtype(*dir, co.dtype)));
  check_unquantized_tensors_fit(*dir, unquantized_dtype(*dir, co.dtype));

  std::vector<std::vector<int32_t>> calibration;
  std::optional<CalibrationStats> calibration_stats_seen;
  if (qo.method == QuantMethod::Gptq) {
    const int64_t samples = args.get_int("samples", 128, 1, 1 << 24);
    const int64_t seqlen = args.get_int("seqlen", 512, 2, c.max_position_embeddings);
    std::vector<int32_t> stream;
    if (args.has("calib") || args.has("calib-jsonl")) {
      auto tok = Tokenizer::from_file(model_path + "/tokenizer.json");
      for (const std::string &f : args.all("calib")) {
        const auto ids = tokenize_text_file(*tok, f);
        stream.insert(stream.end(), ids.begin(), ids.end());
      }
      std::unique_ptr<ChatTemplate> chat;  // read once, and only when a record needs it
      const std::string text_field = args.get("text-field", "text");
      for (const std::string &f : args.all("calib-jsonl")) {
        const std::vector<CalibrationRecord> records = read_calibration_records(f, text_field);
        if (!chat && any_chat_record(records)) {
          chat = std::make_unique<ChatTemplate>(ChatTemplate::from_model_dir(model_path));
        }
        const auto ids = tokenize_calibration_records(records, *tok, chat.get(), f);
        std::printf("calibration: %s: %zu records, %zu tokens\n", f.c_str(), records.size(),
                    ids.size());
        stream.insert(stream.end(), ids.begin(), ids.end());
      }
    }
    for (const std::string &f : args.all("calib-ids")) {
      const auto ids = read_id_file(f, c.vocab_size);
      stream.insert(stream.end(), ids.begin(), ids.end());
    }
    // A tokenizer with more ids than the model's embeddings (a mismatched
    // tokenizer.json) is found here, not as a crash or an error mid-run.
    for (const int32_t id : stream) {
      if (id < 0 || id >= c.vocab_size) {
        throw ToolError("calibration token id " + std::to_string(id) +
                        " is outside the model's vocabulary of " + std::to_string(c.vocab_size) +
                        " (does tokenizer.json belong to this model?)");
      }
    }
    calibration = seed ? random_windows(stream, samples, seqlen, *seed)
                       : cut_windows(stream, samples, seqlen);
    int64_t tokens = 0;
    for (const auto &s : calibration) tokens += static_cast<int64_t>(s.size());
    std::printf("calibration: %lld sequences, %lld tokens (from %zu tokens of text)\n",
                static_cast<long long>(calibration.size()), static_cast<long long>(tokens),
                stream.size());
    if (static_cast<int64_t>(calibration.size()) < samples) {
      std::printf("note: the text holds only %zu disjoint sequences of %lld tokens, not %lld\n",
                  calibration.size(), static_cast<long long>(seqlen),
                  static_cast<long long>(samples));
    }
    const CalibrationStats stats = calibration_stats(calibration, c.vocab_size);
    calibration_stats_seen = stats;
    std::printf("calibration: %lld distinct tokens (%.2f%% of the vocabulary), %.1f%% of 4-token "
                "spans repeated\n",
                static_cast<long long>(stats.unique_tokens), 100.0 * stats.vocab_coverage,
                100.0 * stats.repetition_rate);
    for (const std::string &w : calibration_warnings(stats, c)) {
      std::printf("warning: %s\n", w.c_str());
    }
  }
  for (const std::string &w : ragged_group_warnings(*dir, qo)) {
    std::printf("warning: %s\n", w.c_str());
  }
  std::fflush(stdout);

  const bool quiet = args.flag("quiet");
  const int64_t total_layers = c.num_hidden_layers * static_cast<int64_t>(block_linears(c).size()) +
                               (qo.quantize_lm_head ? 1 : 0);
  Progress progress("quantizing", total_layers, "layers", stderr_is_terminal() || quiet);
  int64_t done = 0;
  QuantizeCallbacks cb;
  cb.layer_done = [&](const LayerResult &l) {
    ++done;
    if (!quiet) {
      if (stderr_is_terminal()) std::fprintf(stderr, "\r\x1b[K");
      if (l.spec.skip) {
        std::printf("%-40s %-11s skipped (full precision)\n", l.name.c_str(),
                    shape_text(l).c_str());
      } else {
        const std::string routed =
            l.routed_tokens < 0 ? ""
            : l.under_calibrated
                ? "  " + std::to_string(l.routed_tokens) + " tokens: RTN (under-calibrated)"
                : "  " + std::to_string(l.routed_tokens) + " tokens";
        std::printf("%-40s %-11s %db g%-4d loss %10.4g  damp %.4f%s%s%s  %6.3f s\n",
                    l.name.c_str(), shape_text(l).c_str(), l.spec.bits, l.spec.group_size,
                    l.stats.loss, l.stats.damp_percent_used,
                    l.stats.damp_retries ? " (raised)" : "",
                    l.stats.fell_back_to_rtn ? "  FELL BACK TO RTN" : "", routed.c_str(),
                    l.seconds);
      }
      std::fflush(stdout);
    }
    progress.update(done);
  };
  QuantizeResult result = quantize_model(*dir, calibration, qo, cb);
  result.calibration_seed = seed;
  result.calibration_stats = calibration_stats_seen;
  progress.finish();
  for (const LossOutlier &o : loss_outliers(result.layers, kLossOutlierFactor)) {
    std::printf("warning: %s: loss %.4g is %.1fx the median of the same projection in the other "
                "blocks (quantize_report.json: loss_outlier_ratio)\n",
                result.layers[o.layer].name.c_str(), result.layers[o.layer].stats.loss, o.ratio);
  }

  // Experts rounded to nearest for want of calibration tokens, each once.
  std::set<std::pair<int64_t, int64_t>> under;
  for (const LayerResult &l : result.layers) {
    if (l.under_calibrated) under.insert({l.block, l.expert});
  }
  if (!under.empty()) {
    std::printf("warning: %zu of %lld experts were routed fewer than %lld calibration tokens "
                "(--expert-min-share %g of their fair share) and were rounded to nearest "
                "(quantize_report.json: experts.under_calibrated)\n",
                under.size(), static_cast<long long>(c.num_experts * c.num_hidden_layers),
                static_cast<long long>(result.expert_min_tokens), qo.expert_min_share);
  }

  const auto write_start = std::chrono::steady_clock::now();
  Progress writing(gguf ? "writing GGUF" : "writing checkpoint", 1, "files", stderr_is_terminal());
  if (gguf != nullptr) {
    write_gguf_model(*dir, result, *gguf, qo.num_threads, out_path, interrupted);
  } else {
    write_gptq_checkpoint(*dir, result, qo, co, out_path);
  }
  writing.update(1);
  writing.finish();
  const double write_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
  if (!save_calib_path.empty()) {
    std::string text;
    for (const std::vector<int32_t> &window : calibration) {
      for (size_t i = 0; i < window.size(); ++i) {
        text += (i ? " " : "") + std::to_string(window[i]);
      }
      text += '\n';
    }
    write_file_replacing(save_calib_path, text);
  }
  int64_t quantized = 0, fallbacks = 0, raised = 0;
  for (const LayerResult &l : result.layers) {
    if (l.spec.skip) continue;
    ++quantized;
    fallbacks += l.stats.fell_back_to_rtn;
    raised += l.stats.damp_retries > 0;
  }
  std::printf("quantized %lld layers (%lld with raised damping, %lld fell back to RTN) in "
              "%.1f s (forward + Hessians %.1f s, GPTQ %.1f s)\nwrote %s in %.1f s\n",
              static_cast<long long>(quantized), static_cast<long long>(raised),
              static_cast<long long>(fallbacks), result.total_seconds, result.forward_seconds,
              result.quantize_seconds, out_path.c_str(), write_seconds);
  return 0;
}

// ------------------------------------------------------------------ eval

struct EvalRow {
  std::string label, source;
  std::string bits, group;
  PerplexityResult result;
};

std::string spec_summary(const GptqCheckpointConfig &q, const char *what) {
  if (std::strcmp(what, "bits") == 0) return std::to_string(q.base.bits) + (q.dynamic.empty() ? "" : "*");
  return std::to_string(q.base.group_size) + (q.dynamic.empty() ? "" : "*");
}

// A checkpoint must be of the model it is compared with: same family and
// geometry (a perplexity against another model's would mean nothing).
void check_same_model(const LlamaConfig &a, const std::string &a_path, const LlamaConfig &b,
                      const std::string &b_path) {
  auto differ = [&](const char *what, const std::string &x, const std::string &y) {
    throw ToolError("--quantized " + b_path + " is not a checkpoint of --model " + a_path + ": " +
                    what + " " + y + " against " + x);
  };
  if (a.architecture != b.architecture) differ("architecture", a.architecture, b.architecture);
  const std::pair<const char *, std::pair<int64_t, int64_t>> dims[] = {
      {"hidden_size", {a.hidden_size, b.hidden_size}},
      {"intermediate_size", {a.intermediate_size, b.intermediate_size}},
      {"num_hidden_layers", {a.num_hidden_layers, b.num_hidden_layers}},
      {"num_attention_heads", {a.num_attention_heads, b.num_attention_heads}},
      {"num_key_value_heads", {a.num_key_value_heads, b.num_key_value_heads}},
      {"head_dim", {a.head_dim, b.head_dim}},
      {"vocab_size", {a.vocab_size, b.vocab_size}},
  };
  for (const auto &d : dims) {
    if (d.second.first != d.second.second) {
      differ(d.first, std::to_string(d.second.first), std::to_string(d.second.second));
    }
  }
}

LlamaModel rtn_model(const ModelDir &original, const GptqCheckpointConfig &q, int32_t threads) {
  LlamaModel m = load_model(original);
  for (int64_t b = 0; b < m.config.num_hidden_layers; ++b) {
    for (const LinearId id : block_linears(m.config)) {
      const std::string name = linear_name(m.config, b, id);
      const LayerQuantSpec spec = checkpoint_spec_for(q, name);
      if (spec.skip) continue;
      throw_if_interrupted();
      Linear &layer = block_linear(m.blocks[static_cast<size_t>(b)], id);
      std::vector<float> widened;  // a 16-bit layer
      auto qt = quantize_rtn(layer.weight_f32(&widened), layer.out_features(),
                             layer.in_features(), spec, threads, nullptr);
      layer = Linear(qt, layer.bias());
    }
  }
  if (q.quantize_lm_head) {
    const LayerQuantSpec spec = checkpoint_spec_for(q, "lm_head");
    if (!spec.skip) {
      std::vector<float> widened;  // a 16-bit lm_head
      m.lm_head = Linear(quantize_rtn(m.lm_head.weight_f32(&widened), m.lm_head.out_features(),
                                      m.lm_head.in_features(), spec, threads, nullptr),
                         {});
    }
  }
  return m;
}

int cmd_eval(int argc, char **argv, const std::atomic<bool> *interrupted) {
  CliArgs args(argc, argv, 2,
               {"model", "quantized", "gguf", "text", "ids", "ctx", "stride", "max-tokens", "json",
                "threads", "backend"},
               {"no-rtn"});
  choose_backend(args);
  const std::string model_path = resolve_model_path(args.required("model"), "--model");
  if (args.has("text") == args.has("ids")) throw ToolError("pass exactly one of --text and --ids");
  std::vector<std::string> quantized_paths;
  for (const std::string &q : args.all("quantized")) {
    quantized_paths.push_back(resolve_model_path(q, "--quantized"));
  }
  if (args.has("json")) {
    std::vector<std::string> inputs = quantized_paths;
    for (const std::string &g : args.all("gguf")) inputs.push_back(g);
    inputs.push_back(model_path);
    for (const char *f : {"text", "ids"}) {
      if (args.has(f)) inputs.push_back(args.get(f, ""));
    }
    check_apart_from_inputs("--json", args.get("json", ""), inputs);
    check_output_parent("--json", args.get("json", ""));
  }
  auto original = ModelDir::open(model_path);
  check_llama_tensors(*original);
  if (is_gptq_checkpoint(*original)) {
    throw ToolError(model_path + " is a GPTQ checkpoint; --model takes the original model "
                                 "and --quantized its checkpoints");
  }
  const LlamaConfig &c = original->config();
  PerplexityOptions po;
  po.context = args.get_int("ctx", 512, 2, c.max_position_embeddings);
  po.stride = args.get_int("stride", po.context, 1, po.context);
  po.interrupted = interrupted;
  const auto threads = static_cast<int32_t>(args.get_int("threads", 0, 0, 4096));
  const int64_t max_tokens = args.get_int("max-tokens", 0, 0, INT64_MAX);

  // Every checkpoint is opened and checked (config, dynamic rules, the
  // shapes of every quantized tensor, the same model as --model) before
  // anything is evaluated: a bad --quantized path must not be found only
  // after minutes spent on the original.
  struct Checkpoint {
    std::string path;
    std::unique_ptr<ModelDir> dir;
    GptqCheckpointConfig config;
  };
  std::vector<Checkpoint> checkpoints;
  for (const std::string &qpath : quantized_paths) {
    Checkpoint ck{qpath, ModelDir::open(qpath), {}};
    check_llama_tensors(*ck.dir);
    if (!is_gptq_checkpoint(*ck.dir)) throw ToolError(qpath + " is not a GPTQ checkpoint");
    ck.config = read_gptq_checkpoint_config(*ck.dir);
    check_gptq_tensors(*ck.dir, ck.config);
    check_same_model(c, model_path, ck.dir->config(), qpath);
    checkpoints.push_back(std::move(ck));
  }

  // Each GGUF's structure checked up front too (it is read again when run).
  for (const std::string &gpath : args.all("gguf")) GgufReader check(gpath);

  std::vector<int32_t> stream;
  std::string text_name;
  if (args.has("text")) {
    text_name = args.get("text", "");
    auto tok = Tokenizer::from_file(model_path + "/tokenizer.json");
    stream = tokenize_text_file(*tok, text_name);
  } else {
    text_name = args.get("ids", "");
    stream = read_id_file(text_name, c.vocab_size);
  }
  if (max_tokens > 0 && static_cast<int64_t>(stream.size()) > max_tokens) {
    stream.resize(static_cast<size_t>(max_tokens));
  }
  const int64_t scored = tokens_to_score(static_cast<int64_t>(stream.size()), po);
  std::printf("perplexity on %s: %zu tokens, %lld scored, context %lld, stride %lld\n",
              text_name.c_str(), stream.size(), static_cast<long long>(scored),
              static_cast<long long>(po.context), static_cast<long long>(po.stride));
  std::fflush(stdout);

  std::vector<EvalRow> rows;
  auto run = [&](const std::string &label, const std::string &source, const std::string &bits,
                 const std::string &group, const LlamaModel &model) {
    Progress p("eval " + label, scored, "tokens", true);
    PerplexityOptions o = po;
    o.progress = [&](int64_t done, int64_t) { p.update(done); };
    EvalRow row{label, source, bits, group, perplexity(model, stream, o)};
    p.finish();
    rows.push_back(row);
  };
  {
    LlamaModel m = load_model(*original);
    run("original", model_path, "-", "-", m);
  }
  std::map<std::string, bool> rtn_done;
  for (const Checkpoint &ck : checkpoints) {
    const std::string &qpath = ck.path;
    const ModelDir *qdir = ck.dir.get();
    const GptqCheckpointConfig &q = ck.config;
    const std::string bits = spec_summary(q, "bits"), group = spec_summary(q, "group");
    if (!args.flag("no-rtn")) {
      nlohmann::json settings = qdir->config_json()["quantization_config"];
      settings.erase("meta");
      settings.erase("desc_act");
      settings.erase("damp_percent");
      settings.erase("checkpoint_format");
      if (!rtn_done[settings.dump()]) {
        rtn_done[settings.dump()] = true;
        LlamaModel m = rtn_model(*original, q, threads);
        run("RTN", "round-to-nearest at " + qpath + "'s settings", bits, group, m);
      }
    }
    LlamaModel m = load_model(*qdir);
    run("GPTQ", qpath, bits, group, m);
  }
  for (const std::string &gpath : args.all("gguf")) {
    std::string type;
    LlamaModel m = load_gguf_model(*original, gpath, &type);
    // Blocks of 32 columns, or of 256 where K-quants are among the types.
    run("GGUF", gpath, type, type.find("_K") != std::string::npos ? "256" : "32", m);
  }

  const double base = rows.front().result.perplexity;
  std::printf("\n%-9s %5s %6s %12s %12s  %s\n", "model", "bits", "group", "perplexity",
              "vs original", "source");
  nlohmann::json out = nlohmann::json::array();
  for (const EvalRow &r : rows) {
    char delta[32] = "";
    if (&r != &rows.front()) {
      std::snprintf(delta, sizeof delta, "%+.2f%%", 100.0 * (r.result.perplexity / base - 1.0));
    }
    std::printf("%-9s %5s %6s %12.4f %12s  %s\n", r.label.c_str(), r.bits.c_str(),
                r.group.c_str(), r.result.perplexity, delta, r.source.c_str());
    out.push_back({{"model", r.label}, {"source", r.source}, {"bits", r.bits},
                   {"group_size", r.group}, {"perplexity", r.result.perplexity},
                   {"mean_nll", r.result.mean_nll}, {"scored_tokens", r.result.scored_tokens},
                   {"seconds", r.result.seconds}});
  }
  if (args.has("json")) {
    nlohmann::json doc{{"text", text_name}, {"tokens", stream.size()},
                       {"context", po.context}, {"stride", po.stride}, {"rows", out}};
    write_file_replacing(args.get("json", ""), doc.dump(2) + "\n");
  }
  return 0;
}

// ---------------------------------------------------------------- logits

void write_npy_f32(const std::string &path, const std::vector<float> &data, int64_t rows,
                   int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string blob("\x93NUMPY\x01\x00", 8);
  blob += static_cast<char>(header.size() & 0xff);
  blob += static_cast<char>(header.size() >> 8);
  blob += header;
  blob.append(reinterpret_cast<const char *>(data.data()), data.size() * sizeof(float));
  write_file_replacing(path, blob);
}

int cmd_logits(int argc, char **argv) {
  CliArgs args(argc, argv, 2, {"model", "ids", "text", "out", "backend"}, {});
  choose_backend(args);
  const std::string model_path = resolve_model_path(args.required("model"), "--model");
  const std::string out_path = args.required("out");
  std::vector<std::string> inputs{model_path};
  if (args.has("ids")) inputs.push_back(args.get("ids", ""));
  check_apart_from_inputs("--out", out_path, inputs);
  check_output_parent("--out", out_path);
  auto dir = ModelDir::open(model_path);
  check_llama_tensors(*dir);
  std::vector<int32_t> ids;
  if (args.has("ids") == args.has("text")) throw ToolError("pass exactly one of --ids and --text");
  if (args.has("ids")) {
    ids = read_id_file(args.get("ids", ""), dir->config().vocab_size);
  } else {
    ids = Tokenizer::from_file(model_path + "/tokenizer.json")->encode(args.get("text", ""));
  }
  if (ids.empty()) throw ToolError("no tokens to run");
  if (static_cast<int64_t>(ids.size()) > dir->config().max_position_embeddings) {
    throw ToolError(std::to_string(ids.size()) + " tokens are more than the model's " +
                    "max_position_embeddings (" +
                    std::to_string(dir->config().max_position_embeddings) + ")");
  }
  const LlamaModel model = load_model(*dir);
  SequenceBatch batch;
  batch.add(static_cast<int64_t>(ids.size()));
  const Rope rope(model.config, static_cast<int64_t>(ids.size()));
  const std::vector<float> logits = model_logits(model, rope, ids, batch);
  write_npy_f32(out_path, logits, static_cast<int64_t>(ids.size()), model.config.vocab_size);
  std::printf("wrote %s: %zu tokens x %lld logits\n", out_path.c_str(), ids.size(),
              static_cast<long long>(model.config.vocab_size));
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "--version") {
    std::printf("gptq (libgptq %s)\n", gptq_version_string());
    return 0;
  }
  const std::atomic<bool> *interrupted = install_interrupt_handler();
  try {
    if (command == "quantize") {
      if (wants_help(argc, argv)) return std::fputs(kQuantizeUsage, stdout), 0;
      return cmd_quantize(argc, argv, interrupted);
    }
    if (command == "eval") {
      if (wants_help(argc, argv)) return std::fputs(kEvalUsage, stdout), 0;
      return cmd_eval(argc, argv, interrupted);
    }
    if (command == "logits") {
      if (wants_help(argc, argv)) return std::fputs(kLogitsUsage, stdout), 0;
      return cmd_logits(argc, argv);
    }
    if (command == "generate") {
      if (wants_help(argc, argv)) return std::fputs(kGenerateUsage, stdout), 0;
      return cmd_generate(argc, argv);
    }
    if (command == "bench") {
      if (wants_help(argc, argv)) return std::fputs(kBenchUsage, stdout), 0;
      return cmd_bench(argc, argv);
    }
    std::fprintf(stderr, "gptq: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const ToolError &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "gptq %s: error: %s\n", command.c_str(), e.what());
    // Stopped by a signal: 128 + its number, as a shell reports it (130
    // for SIGINT, 143 for SIGTERM).
    if (interrupted->load()) return 128 + (interrupt_signal() != 0 ? interrupt_signal() : SIGINT);
    return 1;
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "gptq %s: error: out of memory\n", command.c_str());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "gptq %s: internal error: %s\n", command.c_str(), e.what());
    return 1;
  }
}
