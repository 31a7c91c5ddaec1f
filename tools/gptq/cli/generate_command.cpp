// gptq generate: prompts in, text out, through the KV-cache decoder
// (pipeline/generate.h). One prompt streams its text as it is decoded;
// several (--prompt-file) run --batch at a time and print each completion,
// in prompt order, as soon as it and those before it are done.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/run_options.h"
#include "common/tool_error.h"
#include "formats/file_util.h"
#include "model/llama_model.h"
#include "model/joined_linears.h"
#include "model/model_dir.h"
#include "pipeline/generate.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/tokenizer.h"

namespace gptqtool {

const char kGenerateUsage[] =
    "usage: gptq generate --model DIR (--prompt TEXT | --prompt-file F) [options]\n"
    "\n"
    "  --model DIR             a model directory or GPTQ checkpoint (ours or another tool's)\n"
    "  --prompt TEXT           the prompt\n"
    "  --prompt-file F         prompts, one per line (each line its own sequence)\n"
    "  --chat                  wrap each prompt as a user message in the model's chat\n"
    "                          template (ChatML, Llama 3 or Mistral; others are refused)\n"
    "  --system TEXT           with --chat: a system message first\n"
    "  --max-new-tokens N      tokens to generate at most per prompt (default 256)\n"
    "  --temperature T         0 (default) is greedy; > 0 samples\n"
    "  --top-p P               keep the most probable tokens up to probability P (default 1)\n"
    "  --top-k K               keep the K most probable tokens (default 0: all)\n"
    "  --repetition-penalty R  transformers' penalty on tokens already present (default 1)\n"
    "  --seed S                seed of the sampling (default 0); the same seed gives the\n"
    "                          same text\n"
    "  --stop STR              end a sequence when its text contains STR (not printed);\n"
    "                          repeatable. EOS (generation_config.json, config.json) always\n"
    "                          ends it\n"
    "  --batch N               sequences decoded together (default 1)\n"
    "  --print-ids             print the generated token ids (space separated) instead\n"
    "                          of the text\n"
    "  --ctx N                 positions per sequence, prompt included (default: the\n"
    "                          model's max_position_embeddings)\n"
    "  --matmul M              quantized layers: f32 (default: float32 activations) or\n"
    "                          int8 (int8 activations, faster, ~1% error)\n"
    "  --threads N             threads (default: all cores)\n"
    "  --kv-cache T            keys and values stored as f32 (default) or bf16 (half the\n"
    "                          memory, faster decoding of long or batched sequences)\n"
    "  --backend B             where quantized layers are multiplied: auto (default), cpu\n"
    "                          or cuda\n";

namespace {

void add_ids(const nlohmann::json &v, std::vector<int32_t> *out) {
  if (v.is_number_integer()) {
    out->push_back(v.get<int32_t>());
  } else if (v.is_array()) {
    for (const auto &e : v) {
      if (e.is_number_integer()) out->push_back(e.get<int32_t>());
    }
  }
}

// The ids that end a sequence: generation_config.json's eos_token_id (what
// transformers' generate() stops on), config.json's, and the tokenizer's
// eos_token.
std::vector<int32_t> end_of_sequence_ids(const ModelDir &dir, const Tokenizer &tok) {
  std::vector<int32_t> ids;
  const std::string gen = dir.path() + "/generation_config.json";
  if (path_exists(gen)) {
    try {
      const nlohmann::json g = nlohmann::json::parse(read_text_file(gen));
      if (g.contains("eos_token_id")) add_ids(g["eos_token_id"], &ids);
    } catch (const nlohmann::json::exception &e) {
      throw ToolError(gen + ": not valid JSON (" + e.what() + ")");
    }
  }
  if (dir.config_json().contains("eos_token_id")) add_ids(dir.config_json()["eos_token_id"], &ids);
  const std::string tc = dir.path() + "/tokenizer_config.json";
  if (path_exists(tc)) {
    try {
      const nlohmann::json t = nlohmann::json::parse(read_text_file(tc));
      if (t.contains("eos_token")) {
        const nlohmann::json &e = t["eos_token"];
        const std::string text = e.is_string() ? e.get<std::string>()
                                 : e.is_object() ? e.value("content", "") : "";
        const int32_t id = text.empty() ? -1 : tok.token_id(text);
        if (id >= 0) ids.push_back(id);
      }
    } catch (const nlohmann::json::exception &e) {
      throw ToolError(tc + ": not valid JSON (" + e.what() + ")");
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<std::string> read_prompt_lines(const std::string &path) {
  const std::string text = read_text_file(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      throw ToolError(path + ": line " + std::to_string(lines.size() + 1) +
                      " is empty (one prompt per line; empty prompts are not allowed)");
    }
    lines.push_back(line);
    start = end + 1;
  }
  if (lines.empty()) throw ToolError(path + " holds no prompt");
  return lines;
}

}  // namespace

int cmd_generate(int argc, char **argv) {
  CliArgs args(argc, argv, 2,
               {"model", "prompt", "prompt-file", "system", "max-new-tokens", "temperature",
                "top-p", "top-k", "repetition-penalty", "seed", "stop", "batch", "ctx",
                "matmul", "threads", "backend", "kv-cache"},
               {"chat", "print-ids"});
  const bool print_ids = args.flag("print-ids");
  choose_backend(args);
  const MatmulChoice matmul = choose_matmul(args);
  const std::string model_path = args.required("model");
  if (args.has("prompt") == args.has("prompt-file")) {
    throw ToolError("pass exactly one of --prompt and --prompt-file");
  }
  if (args.has("system") && !args.flag("chat")) throw ToolError("--system needs --chat");
  GenerateOptions o;
  o.max_new_tokens = args.get_int("max-new-tokens", 256, INT64_MIN, INT64_MAX);
  if (o.max_new_tokens < 1) throw ToolError("--max-new-tokens must be at least 1");
  o.sampling.temperature = args.get_double("temperature", 0.0, -1e300, 1e300);
  o.sampling.top_p = args.get_double("top-p", 1.0, -1e300, 1e300);
  o.sampling.top_k = args.get_int("top-k", 0, INT64_MIN, INT64_MAX);
  o.sampling.repetition_penalty = args.get_double("repetition-penalty", 1.0, -1e300, 1e300);
  o.sampling.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, INT64_MAX));
  validate_sampling(o.sampling);
  o.batch = args.get_int("batch", 1, 1, 4096);
  o.context = args.get_int("ctx", 0, 0, INT64_MAX);
  o.kv_dtype = choose_kv_cache(args);
  const std::vector<std::string> stops = args.all("stop");
  for (const std::string &s : stops) {
    if (s.empty()) throw ToolError("--stop needs a non-empty string");
  }

  std::vector<std::string> texts;
  if (args.has("prompt")) {
    texts.push_back(args.get("prompt", ""));
    if (texts[0].empty()) throw ToolError("the prompt is empty");
  } else {
    texts = read_prompt_lines(args.get("prompt-file", ""));
  }
  auto dir = ModelDir::open(model_path);
  check_llama_tensors(*dir);
  auto tok = Tokenizer::from_file(model_path + "/tokenizer.json");
  if (args.flag("chat")) {
    const ChatTemplate chat = ChatTemplate::from_model_dir(model_path);
    for (std::string &t : texts) {
      std::vector<ChatMessage> messages;
      if (args.has("system")) messages.push_back({"system", args.get("system", "")});
      messages.push_back({"user", t});
      t = chat.render(messages, true);
    }
  }
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string &t : texts) prompts.push_back(tok->encode(t));
  o.eos_ids = end_of_sequence_ids(*dir, *tok);

  LlamaModel model = load_model(*dir);
  join_projections(&model);
  set_matmul(&model, matmul);
  validate_prompts(model, prompts, o);

  const bool single = prompts.size() == 1;
  std::vector<StreamingDecoder> decoders;
  decoders.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) decoders.emplace_back(*tok, stops);
  std::vector<std::string> finished_text(prompts.size());
  std::vector<std::string> id_text(prompts.size());
  std::vector<bool> finished(prompts.size(), false);
  std::vector<FinishReason> reasons(prompts.size(), FinishReason::Length);
  size_t next_to_print = 0;
  int64_t generated = 0;
  const auto start = std::chrono::steady_clock::now();
  generate_tokens(
      model, prompts, o,
      [&](int64_t i, int32_t token) {
        ++generated;
        StreamingDecoder &d = decoders[static_cast<size_t>(i)];
        const std::string piece = d.push(token);
        if (!d.stopped()) {
          std::string &ids = id_text[static_cast<size_t>(i)];
          ids += (ids.empty() ? "" : " ") + std::to_string(token);
        }
        if (single && !print_ids && !piece.empty()) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
        return d.stopped();
      },
      [&](int64_t i, FinishReason reason) {
        const auto k = static_cast<size_t>(i);
        StreamingDecoder &d = decoders[k];
        const std::string rest = d.finish();
        reasons[k] = reason;
        if (single) {
          if (print_ids) std::fputs(id_text[k].c_str(), stdout);
          else std::fwrite(rest.data(), 1, rest.size(), stdout);
          std::fputc('\n', stdout);
          std::fflush(stdout);
          return;
        }
        finished_text[k] = print_ids ? id_text[k] : d.text();
        finished[k] = true;
        while (next_to_print < prompts.size() && finished[next_to_print]) {
          std::printf("=== %zu (%s) ===\n%s\n", next_to_print + 1,
                      finish_reason_name(reasons[next_to_print]),
                      finished_text[next_to_print].c_str());
          std::fflush(stdout);
          ++next_to_print;
        }
      });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (single) {
    std::fprintf(stderr, "[%lld prompt tokens, %lld generated in %.2f s (%.1f tokens/s), stop: %s]\n",
                 static_cast<long long>(prompts[0].size()), static_cast<long long>(generated),
                 seconds, generated / std::max(seconds, 1e-9), finish_reason_name(reasons[0]));
  } else {
    std::fprintf(stderr, "[%zu prompts, %lld tokens generated in %.2f s (%.1f tokens/s), batch %lld]\n",
                 prompts.size(), static_cast<long long>(generated), seconds,
                 generated / std::max(seconds, 1e-9), static_cast<long long>(o.batch));
  }
  return 0;
}

}  // namespace gptqtool
