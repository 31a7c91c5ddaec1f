#include "plugin_backend.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "half.h"

namespace gptq {
namespace {

// One message buffer per call: the plugin writes into it only on failure.
struct Message {
  char text[GPTQ_PLUGIN_MSG_SIZE] = {};
};

// Turns a plugin's status into the core's: OK returns, a known error code is
// thrown with the plugin's message, anything else is a plugin bug.
void check(int32_t status, const gptq_plugin_table &table, const char *entry, const Message &msg) {
  if (status == GPTQ_OK) return;
  std::string text(msg.text, strnlen(msg.text, sizeof msg.text));
  if (text.empty()) text = "failed without a message";
  const std::string prefix = std::string(table.name) + " backend: " + entry + ": ";
  if (status > GPTQ_OK && status <= GPTQ_ERR_INTERNAL)
    throw Error(static_cast<gptq_status>(status), prefix + text);
  throw Error(GPTQ_ERR_INTERNAL,
              prefix + "returned the unknown status " + std::to_string(status) + " (" + text + ")");
}

int32_t memory_code(Memory m) {
  return m == Memory::kDevice ? GPTQ_PLUGIN_MEMORY_DEVICE : GPTQ_PLUGIN_MEMORY_HOST;
}

class PluginHessian final : public Hessian {
 public:
  PluginHessian(const gptq_plugin_table &table, gptq_plugin_hessian *handle, int64_t dim)
      : table_(table), handle_(handle), dim_(dim) {}
  ~PluginHessian() override { table_.hessian_destroy(handle_); }
  PluginHessian(const PluginHessian &) = delete;
  PluginHessian &operator=(const PluginHessian &) = delete;

  int64_t dim() const override { return dim_; }

  void add_batch(const void *x, gptq_dtype dtype, int64_t rows, Memory memory, double beta,
                 double alpha) override {
    Message msg;
    check(table_.hessian_add_batch(handle_, x, dtype, rows, memory_code(memory), beta, alpha,
                                   msg.text, sizeof msg.text),
          table_, "hessian_add_batch", msg);
  }

  void merge(const double *h, double keep, double take) override {
    Message msg;
    check(table_.hessian_merge(handle_, h, keep, take, msg.text, sizeof msg.text), table_,
          "hessian_merge", msg);
  }

  void export_to(double *h) const override {
    Message msg;
    check(table_.hessian_export(handle_, h, msg.text, sizeof msg.text), table_, "hessian_export",
          msg);
  }

  const gptq_plugin_hessian *handle() const { return handle_; }

 private:
  const gptq_plugin_table &table_;
  gptq_plugin_hessian *handle_;
  int64_t dim_;
};

class PluginWeights final : public PreparedWeights {
 public:
  PluginWeights(const gptq_plugin_table &table, gptq_plugin_weights *handle)
      : table_(table), handle_(handle) {}
  ~PluginWeights() override { table_.weights_destroy(handle_); }
  PluginWeights(const PluginWeights &) = delete;
  PluginWeights &operator=(const PluginWeights &) = delete;
  const gptq_plugin_weights *handle() const { return handle_; }

 private:
  const gptq_plugin_table &table_;
  gptq_plugin_weights *handle_;
};

// The ABI's view of a tensor. The arrays are only read by weights_prepare and
// matmul; the const_cast is the price of one struct for both directions.
gptq_plugin_qtensor view_of(const QTensorData &q) {
  gptq_plugin_qtensor v{};
  v.struct_size = sizeof v;
  v.out_features = q.out_features;
  v.in_features = q.in_features;
  v.bits = q.bits;
  v.group_size = q.group_size;
  v.groups = q.groups;
  v.act_order = q.act_order ? 1 : 0;
  // A plugin's tensors keep their codes as bytes (only the CPU backend
  // holds them in its layout instead).
  if ((q.codes.empty() && q.code_source != nullptr) || q.param_source != nullptr)
    throw Error(GPTQ_ERR_INTERNAL, "a tensor whose codes the CPU layout holds was given to a plugin");
  v.codes = const_cast<uint8_t *>(q.codes.data());
  v.scales = const_cast<uint16_t *>(q.scales.data());
  v.zeros = const_cast<int32_t *>(q.zeros.data());
  v.g_idx = const_cast<int32_t *>(q.g_idx.data());
  return v;
}

// The plugin is a trust boundary: g_idx indexes scale arrays, so a buggy
// plugin must give an error, not out-of-bounds reads; zeros and scales are
// checked with it. The codes are not scanned: they are only ever values
// (dequantized or packed under a mask), so a wrong one cannot make a read go
// astray, and the self-check at load compares every code of a real problem
// with the CPU backend's; a scan of every code would be a large part of a
// GPU solve's time (bench/RESULTS.md).
void require_valid_result(const QTensorData &q, const char *name) {
  auto bad = [&](const std::string &what) {
    throw Error(GPTQ_ERR_INTERNAL,
                std::string(name) + " backend: quantize returned an invalid tensor: " + what);
  };
  const int32_t max_code = (1 << q.bits) - 1;
  for (size_t i = 0; i < q.zeros.size(); ++i)
    if (q.zeros[i] < 0 || q.zeros[i] > max_code + 1)
      bad("zeros[" + std::to_string(i) + "] is out of range");
  for (size_t i = 0; i < q.scales.size(); ++i)
    if (!half_is_finite(q.scales[i])) bad("scales[" + std::to_string(i) + "] is not finite");
  for (size_t j = 0; j < q.g_idx.size(); ++j)
    if (q.g_idx[j] < 0 || q.g_idx[j] >= q.groups)
      bad("g_idx[" + std::to_string(j) + "] = " + std::to_string(q.g_idx[j]) +
          " is not a group (there are " + std::to_string(q.groups) + ")");
}

class PluginBackend final : public Backend {
 public:
  PluginBackend(const gptq_plugin_table &table, gptq_backend kind) : table_(table), kind_(kind) {}

  gptq_backend kind() const override { return kind_; }
  const char *name() const override { return table_.name; }

  std::unique_ptr<Hessian> create_hessian(int64_t dim, gptq_precision precision,
                                          void *stream) override {
    gptq_plugin_hessian *handle = nullptr;
    Message msg;
    check(table_.hessian_create(dim, precision, stream, &handle, msg.text, sizeof msg.text),
          table_, "hessian_create", msg);
    if (handle == nullptr)
      throw Error(GPTQ_ERR_INTERNAL, std::string(table_.name) +
                                         " backend: hessian_create succeeded but gave no handle");
    // If make_unique throws, the handle must not leak.
    try {
      return std::make_unique<PluginHessian>(table_, handle, dim);
    } catch (...) {
      table_.hessian_destroy(handle);
      throw;
    }
  }

  QTensorData quantize(Hessian &hessian, const QuantizeJob &job,
                       gptq_quant_stats &stats) override {
    const auto *h = dynamic_cast<const PluginHessian *>(&hessian);
    if (h == nullptr)
      throw Error(GPTQ_ERR_INTERNAL, std::string("gptq_quantize: the Hessian does not belong to the ") +
                                         table_.name + " backend");
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    QTensorData q;
    q.out_features = job.out_features;
    q.in_features = hessian.dim();
    q.bits = job.config.bits;
    q.group_size = job.config.group_size;
    q.groups = group_count(q.in_features, q.group_size);
    q.codes.resize(static_cast<size_t>(q.out_features * q.in_features));
    q.scales.resize(static_cast<size_t>(q.groups * q.out_features));
    q.zeros.resize(static_cast<size_t>(q.groups * q.out_features));
    q.g_idx.resize(static_cast<size_t>(q.in_features));
    gptq_plugin_qtensor out = view_of(q);
    gptq_quant_stats plugin_stats{};
    plugin_stats.struct_size = sizeof plugin_stats;
    Message msg;
    const auto plugin_start = Clock::now();
    check(table_.quantize(h->handle(), job.weights, job.dtype, memory_code(job.memory),
                          &job.config, &out, &plugin_stats, msg.text, sizeof msg.text),
          table_, "quantize", msg);
    const auto check_start = Clock::now();
    q.act_order = out.act_order != 0;
    require_valid_result(q, table_.name);
    auto ms = [](Clock::time_point a, Clock::time_point b) {
      return std::to_string(std::chrono::duration<double, std::milli>(b - a).count());
    };
    job.logger.log(GPTQ_LOG_DEBUG, std::string(table_.name) + " quantize as the core sees it: " +
                                       "result arrays " + ms(start, plugin_start) + " ms, plugin " +
                                       ms(plugin_start, check_start) + " ms, checks " +
                                       ms(check_start, Clock::now()) + " ms");
    stats.loss = plugin_stats.loss;
    stats.damp_percent_used = plugin_stats.damp_percent_used;
    stats.damp_retries = plugin_stats.damp_retries;
    stats.fell_back_to_rtn = plugin_stats.fell_back_to_rtn;
    stats.dead_columns = plugin_stats.dead_columns;
    return q;
  }

  std::unique_ptr<PreparedWeights> prepare(const QTensorData &q, void *stream) override {
    const gptq_plugin_qtensor view = view_of(q);
    gptq_plugin_weights *handle = nullptr;
    Message msg;
    check(table_.weights_prepare(&view, stream, &handle, msg.text, sizeof msg.text), table_,
          "weights_prepare", msg);
    if (handle == nullptr)
      throw Error(GPTQ_ERR_INTERNAL, std::string(table_.name) +
                                         " backend: weights_prepare succeeded but gave no handle");
    try {
      return std::make_unique<PluginWeights>(table_, handle);
    } catch (...) {
      table_.weights_destroy(handle);
      throw;
    }
  }

  void matmul(const QTensorData &q, const PreparedWeights &prepared, const void *x,
              gptq_dtype dtype, int64_t rows, const void *bias, void *y,
              const MatmulOptions &options) override {
    const auto *weights = dynamic_cast<const PluginWeights *>(&prepared);
    if (weights == nullptr)
      throw Error(GPTQ_ERR_INTERNAL, std::string("gptq_matmul: the tensor was not prepared by the ") +
                                         table_.name + " backend");
    if (options.out_begin != 0 || (options.out_end != 0 && options.out_end != q.out_features))
      throw Error(GPTQ_ERR_UNSUPPORTED,
                  std::string("gptq_matmul: the ") + table_.name +
                      " backend computes whole products; options->out_begin/out_end select "
                      "output features on the CPU backend only");
    const gptq_plugin_qtensor view = view_of(q);
    gptq_plugin_matmul_options o{};
    o.struct_size = sizeof o;
    o.int8_activations = options.int8_activations ? 1 : 0;
    o.num_threads = options.num_threads;
    Message msg;
    check(table_.matmul(weights->handle(), &view, x, dtype, rows, bias, y,
                        memory_code(options.memory), options.stream, &o, msg.text,
                        sizeof msg.text),
          table_, "matmul", msg);
  }

  bool has_device_memory() const override { return true; }

  Memory memory_of(const void *p) override {
    int32_t memory = GPTQ_PLUGIN_MEMORY_HOST;
    Message msg;
    check(table_.memory_of(p, &memory, msg.text, sizeof msg.text), table_, "memory_of", msg);
    return memory == GPTQ_PLUGIN_MEMORY_DEVICE ? Memory::kDevice : Memory::kHost;
  }

  ScanResult scan_device(const void *x, gptq_dtype dtype, int64_t count, void *stream) override {
    ScanResult r;
    Message msg;
    check(table_.scan(x, dtype, count, stream, &r.first_non_finite, &r.max_abs, msg.text,
                      sizeof msg.text),
          table_, "scan", msg);
    if (r.first_non_finite < -1 || r.first_non_finite >= count || !(r.max_abs >= 0.0))
      throw Error(GPTQ_ERR_INTERNAL, std::string(table_.name) + " backend: scan returned an "
                                                                  "impossible result");
    return r;
  }

  void copy_to_host(void *dst, const void *src, size_t bytes, void *stream) override {
    Message msg;
    check(table_.copy_to_host(dst, src, bytes, stream, msg.text, sizeof msg.text), table_,
          "copy_to_host", msg);
  }

 private:
  const gptq_plugin_table &table_;
  gptq_backend kind_;
};

}  // namespace

std::unique_ptr<Backend> make_plugin_backend(const gptq_plugin_table &table, gptq_backend kind) {
  return std::make_unique<PluginBackend>(table, kind);
}

}  // namespace gptq
