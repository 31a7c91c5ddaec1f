// Where the tool may write. An output must never overwrite, delete or sit
// inside what the run reads (the model directory, calibration and
// evaluation files), and `quantize --overwrite` may replace only what this
// tool itself wrote before: a checkpoint directory with its report. Paths
// are compared after resolving symbolic links, so a link or a "../" spelling
// of an input is seen for what it is.
#pragma once

#include <string>
#include <vector>

namespace gptqtool {

// Throws ToolError("<option> <out> is|contains|lies inside the input <x>")
// unless `out` is apart from every input: not the same file or directory
// (by path or by inode), not inside an input directory, not a directory
// holding an input.
void check_apart_from_inputs(const std::string &option, const std::string &out,
                             const std::vector<std::string> &inputs);

// Throws ToolError unless the directory `out` would be created in exists
// and can be written, so that a run never finds out at its end that its
// result has nowhere to go.
void check_output_parent(const std::string &option, const std::string &out);

// Whether `dir` is a checkpoint directory this tool wrote: a real
// directory (not a symbolic link) holding quantize_report.json and a
// config.json whose quantization_config says quant_method "gptq" and names
// libgptq as its quantizer. *why_not says what is missing otherwise.
bool is_checkpoint_we_wrote(const std::string &dir, std::string *why_not);

// The output directory of `quantize`: free, or with `overwrite` one of our
// own checkpoints (is_checkpoint_we_wrote). Throws ToolError otherwise.
void check_checkpoint_output(const std::string &out, bool overwrite);

}  // namespace gptqtool
