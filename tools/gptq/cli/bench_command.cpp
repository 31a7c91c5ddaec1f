// gptq bench: how fast a model (float or GPTQ checkpoint) runs through the
// tool's KV-cache decoder. For each batch size, each repetition prefills
// `batch` prompts of --prompt-tokens tokens in one forward pass, then runs
// --new-tokens decode steps (one new token per sequence per step, greedy).
// Reported per batch size: prefill and decode tokens/s, the latency of a
// decode step (each sequence's time per token) and of a whole request
// (prefill + every decode step), mean and P90, and the peak resident memory.
// Several --model run one after another and are printed side by side.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/run_options.h"
#include "common/interrupt.h"
#include "common/tool_error.h"
#include "formats/file_util.h"
#include "formats/output_guard.h"
#include "model/kv_cache.h"
#include "model/llama_model.h"
#include "model/joined_linears.h"
#include "model/model_dir.h"
#include "model/parallel.h"
#include "pipeline/sampling.h"

namespace gptqtool {

const char kBenchUsage[] =
    "usage: gptq bench --model DIR [--model DIR2] [options]\n"
    "\n"
    "  --model DIR         a model directory or GPTQ checkpoint; repeatable (e.g. the float\n"
    "                      model and its checkpoint, printed side by side)\n"
    "  --batch LIST        batch sizes, comma separated (default 1,4,8)\n"
    "  --prompt-tokens N   prompt length of each sequence (default 128)\n"
    "  --new-tokens N      decode steps after the prefill (default 128)\n"
    "  --reps N            timed repetitions per batch size (default 5), after one\n"
    "                      untimed warm-up\n"
    "  --json FILE         also write the results as JSON\n"
    "  --matmul M          quantized layers: f32 (default) or int8 activations\n"
    "  --threads N         threads (default: all cores)\n"
    "  --kv-cache T        keys and values stored as f32 (default) or bf16\n"
    "  --backend B         auto (default), cpu or cuda\n";

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Peak resident memory since the last reset, in bytes. Linux resets the
// peak (VmHWM) when "5" is written to /proc/self/clear_refs; where that is
// not possible the peak is the whole process's (getrusage).
bool reset_peak_memory() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

int64_t peak_memory_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream in(line.substr(6));
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  }
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

double mean_of(const std::vector<double> &v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

// Nearest-rank 90th percentile.
double p90_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(v.size())));
  return v[std::max<size_t>(rank, 1) - 1];
}

std::vector<int64_t> parse_batches(const std::string &list) {
  std::vector<int64_t> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    char *end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > 4096) {
      throw ToolError("--batch takes batch sizes from 1 to 4096 separated by commas, not '" +
                      list + "'");
    }
    out.push_back(v);
  }
  if (out.empty()) throw ToolError("--batch needs at least one batch size");
  return out;
}

struct Row {
  std::string model;
  int64_t batch = 0;
  double prefill_tps = 0, decode_tps = 0;
  double token_ms_mean = 0, token_ms_p90 = 0;
  double request_s_mean = 0, request_s_p90 = 0;
  int64_t peak_bytes = 0;
};

struct Timing {
  double prefill = 0;
  std::vector<double> steps;
};

// One request batch: prefill, then `steps` greedy decode steps.
Timing run_once(const LlamaModel &model, const Rope &rope, int64_t batch, int64_t prompt_tokens,
                int64_t steps, KvDType kv_dtype) {
  const int64_t vocab = model.config.vocab_size;
  KvCache cache(model.config, batch, prompt_tokens + steps, kv_dtype);
  std::mt19937_64 rng(20261205);
  CacheStep step;
  std::vector<int32_t> ids;
  for (int64_t s = 0; s < batch; ++s) {
    step.slots.push_back(s);
    step.batch.add(prompt_tokens);
    for (int64_t t = 0; t < prompt_tokens; ++t) ids.push_back(static_cast<int32_t>(rng() % vocab));
  }
  Timing timing;
  auto t0 = Clock::now();
  std::vector<float> logits = cached_forward(model, rope, &cache, ids, step, LogitRows::Last);
  timing.prefill = seconds_since(t0);
  CacheStep decode;
  decode.slots = step.slots;
  for (int64_t s = 0; s < batch; ++s) decode.batch.add(1);
  for (int64_t k = 0; k < steps; ++k) {
    throw_if_interrupted();
    std::vector<int32_t> next;
    for (int64_t s = 0; s < batch; ++s) next.push_back(argmax(&logits[s * vocab], vocab));
    t0 = Clock::now();
    cached_forward(model, rope, &cache, next, decode, LogitRows::Last, &logits);
    timing.steps.push_back(seconds_since(t0));
  }
  return timing;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

int cmd_bench(int argc, char **argv) {
  CliArgs args(argc, argv, 2,
               {"model", "batch", "prompt-tokens", "new-tokens", "reps", "json", "matmul",
                "threads", "backend", "kv-cache"},
               {});
  choose_backend(args);
  const MatmulChoice matmul = choose_matmul(args);
  const KvDType kv_dtype = choose_kv_cache(args);
  const std::vector<std::string> paths = args.all("model");
  if (paths.empty()) throw ToolError("--model is required");
  const std::vector<int64_t> batches = parse_batches(args.get("batch", "1,4,8"));
  const int64_t prompt_tokens = args.get_int("prompt-tokens", 128, 1, 1 << 20);
  const int64_t steps = args.get_int("new-tokens", 128, 1, 1 << 20);
  const int64_t reps = args.get_int("reps", 5, 1, 100000);
  if (args.has("json")) {
    check_apart_from_inputs("--json", args.get("json", ""), paths);
    check_output_parent("--json", args.get("json", ""));
  }
  // Every model is opened and checked before anything is timed.
  std::vector<std::unique_ptr<ModelDir>> dirs;
  for (const std::string &p : paths) {
    dirs.push_back(ModelDir::open(p));
    check_llama_tensors(*dirs.back());
    const int64_t need = prompt_tokens + steps;
    if (need > dirs.back()->config().max_position_embeddings) {
      throw ToolError("--prompt-tokens + --new-tokens (" + std::to_string(need) +
                      ") is more than " + p + "'s max_position_embeddings (" +
                      std::to_string(dirs.back()->config().max_position_embeddings) + ")");
    }
  }
  const bool peak_resets = reset_peak_memory();
  std::printf("bench: prompt %lld tokens, %lld decode steps, %lld reps (+1 warm-up), "
              "%d threads, matmul %s, KV cache %s\n",
              static_cast<long long>(prompt_tokens), static_cast<long long>(steps),
              static_cast<long long>(reps), worker_count(),
              matmul.int8_activations ? "int8" : "f32", kv_dtype_name(kv_dtype));
  std::fflush(stdout);

  std::vector<Row> rows;
  for (size_t m = 0; m < dirs.size(); ++m) {
    LlamaModel model = load_model(*dirs[m]);
    join_projections(&model);
    set_matmul(&model, matmul);
    const Rope rope(model.config, prompt_tokens + steps);
    const std::string label =
        paths[m] + (has_quantized_layers(model) ? " (GPTQ)" : " (float)");
    for (int64_t batch : batches) {
      if (peak_resets) reset_peak_memory();
      run_once(model, rope, batch, prompt_tokens, steps, kv_dtype);  // warm-up
      std::vector<double> prefill, token_latency, request_latency;
      double decode_seconds = 0;
      for (int64_t r = 0; r < reps; ++r) {
        const Timing t = run_once(model, rope, batch, prompt_tokens, steps, kv_dtype);
        prefill.push_back(t.prefill);
        double total = t.prefill;
        for (double s : t.steps) {
          token_latency.push_back(s);
          total += s;
          decode_seconds += s;
        }
        request_latency.push_back(total);
      }
      Row row;
      row.model = label;
      row.batch = batch;
      row.prefill_tps = static_cast<double>(batch * prompt_tokens) / mean_of(prefill);
      row.decode_tps = static_cast<double>(batch * steps * reps) / decode_seconds;
      row.token_ms_mean = 1e3 * mean_of(token_latency);
      row.token_ms_p90 = 1e3 * p90_of(token_latency);
      row.request_s_mean = mean_of(request_latency);
      row.request_s_p90 = p90_of(request_latency);
      row.peak_bytes = peak_memory_bytes();
      rows.push_back(row);
      std::fprintf(stderr, "  %s batch %lld done\n", label.c_str(), static_cast<long long>(batch));
    }
  }

  std::printf("\n%5s  %-40s %11s %10s %9s %9s %9s %9s %9s\n", "batch", "model", "prefill t/s",
              "decode t/s", "tok ms", "tok P90", "req s", "req P90", "peak MiB");
  for (int64_t batch : batches) {
    for (const Row &r : rows) {
      if (r.batch != batch) continue;
      std::string name = r.model;
      if (name.size() > 40) name = "..." + name.substr(name.size() - 37);
      std::printf("%5lld  %-40s %11s %10s %9s %9s %9s %9s %9s\n", static_cast<long long>(batch),
                  name.c_str(), fixed(r.prefill_tps, 1).c_str(), fixed(r.decode_tps, 1).c_str(),
                  fixed(r.token_ms_mean, 2).c_str(), fixed(r.token_ms_p90, 2).c_str(),
                  fixed(r.request_s_mean, 3).c_str(), fixed(r.request_s_p90, 3).c_str(),
                  fixed(static_cast<double>(r.peak_bytes) / (1 << 20), 0).c_str());
    }
  }
  if (!peak_resets) std::printf("(peak memory is the whole run's: /proc/self/clear_refs was not writable)\n");
  if (args.has("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const Row &r : rows) {
      out.push_back({{"model", r.model}, {"batch", r.batch}, {"prefill_tokens_per_s", r.prefill_tps},
                     {"decode_tokens_per_s", r.decode_tps}, {"token_latency_ms_mean", r.token_ms_mean},
                     {"token_latency_ms_p90", r.token_ms_p90},
                     {"request_latency_s_mean", r.request_s_mean},
                     {"request_latency_s_p90", r.request_s_p90}, {"peak_memory_bytes", r.peak_bytes}});
    }
    nlohmann::json doc{{"prompt_tokens", prompt_tokens}, {"new_tokens", steps}, {"reps", reps},
                       {"threads", worker_count()},
                       {"matmul", matmul.int8_activations ? "int8" : "f32"},
                       {"kv_cache", kv_dtype_name(kv_dtype)},
                       {"peak_memory_per_batch", peak_resets}, {"rows", out}};
    write_file_replacing(args.get("json", ""), doc.dump(2) + "\n");
  }
  return 0;
}

}  // namespace gptqtool
