// The subcommands that live in files of their own (main.cpp dispatches).
#pragma once

namespace gptqtool {

extern const char kGenerateUsage[];
extern const char kBenchUsage[];

// gptq generate: text from a model or checkpoint (generate_command.cpp).
int cmd_generate(int argc, char **argv);
// gptq bench: prefill / decode speed and latency (bench_command.cpp).
int cmd_bench(int argc, char **argv);

}  // namespace gptqtool
