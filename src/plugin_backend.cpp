#include "plugin_backend.h"

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
void check(int32_t status, const gptq_plugin_v1 &table, const char *entry, const Message &msg) {
  if (status == GPTQ_OK) return;
  std::string text(msg.text, strnlen(msg.text, sizeof msg.text));
  if (text.empty()) text = "failed without a message";
  const std::string prefix = std::string(table.name) + " backend: " + entry + ": ";
  if (status > GPTQ_OK && status <= GPTQ_ERR_INTERNAL)
    throw Error(static_cast<gptq_status>(status), prefix + text);
  throw Error(GPTQ_ERR_INTERNAL,
              prefix + "returned the unknown status " + std::to_string(status) + " (" + text + ")");
}

class PluginHessian final : public Hessian {
 public:
  PluginHessian(const gptq_plugin_v1 &table, gptq_plugin_hessian *handle, int64_t dim)
      : table_(table), handle_(handle), dim_(dim) {}
  ~PluginHessian() override { table_.hessian_destroy(handle_); }
  PluginHessian(const PluginHessian &) = delete;
  PluginHessian &operator=(const PluginHessian &) = delete;

  int64_t dim() const override { return dim_; }
  int64_t samples() const override { return samples_; }

  // The running mean's weights are computed here, as the CPU backend computes
  // them, so both backends agree on what "mean" means.
  void add_batch(const void *x, gptq_dtype dtype, int64_t rows, int64_t samples) override {
    const int64_t total = samples_ + samples;
    const double beta = static_cast<double>(samples_) / static_cast<double>(total);
    const double alpha = 2.0 / static_cast<double>(total);
    Message msg;
    check(table_.hessian_add_batch(handle_, x, dtype, rows, GPTQ_PLUGIN_MEMORY_HOST, beta, alpha,
                                   msg.text, sizeof msg.text),
          table_, "hessian_add_batch", msg);
    samples_ = total;
  }

  void merge(const double *h, int64_t samples) override {
    const int64_t total = samples_ + samples;
    const double keep = static_cast<double>(samples_) / static_cast<double>(total);
    const double take = static_cast<double>(samples) / static_cast<double>(total);
    Message msg;
    check(table_.hessian_merge(handle_, h, keep, take, msg.text, sizeof msg.text), table_,
          "hessian_merge", msg);
    samples_ = total;
  }

  void export_to(double *h) const override {
    Message msg;
    check(table_.hessian_export(handle_, h, msg.text, sizeof msg.text), table_, "hessian_export",
          msg);
  }

  const gptq_plugin_hessian *handle() const { return handle_; }

 private:
  const gptq_plugin_v1 &table_;
  gptq_plugin_hessian *handle_;
  int64_t dim_;
  int64_t samples_ = 0;  // kept by the core: the plugin only sees beta/alpha
};

class PluginWeights final : public PreparedWeights {
 public:
  PluginWeights(const gptq_plugin_v1 &table, gptq_plugin_weights *handle)
      : table_(table), handle_(handle) {}
  ~PluginWeights() override { table_.weights_destroy(handle_); }
  PluginWeights(const PluginWeights &) = delete;
  PluginWeights &operator=(const PluginWeights &) = delete;
  const gptq_plugin_weights *handle() const { return handle_; }

 private:
  const gptq_plugin_v1 &table_;
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
  v.codes = const_cast<uint8_t *>(q.codes.data());
  v.scales = const_cast<uint16_t *>(q.scales.data());
  v.zeros = const_cast<int32_t *>(q.zeros.data());
  v.g_idx = const_cast<int32_t *>(q.g_idx.data());
  return v;
}

// The plugin is a trust boundary: g_idx indexes scale arrays and codes feed
// the packers, so a buggy plugin must give an error, not out-of-bounds reads.
void require_valid_result(const QTensorData &q, const char *name) {
  auto bad = [&](const std::string &what) {
    throw Error(GPTQ_ERR_INTERNAL,
                std::string(name) + " backend: quantize returned an invalid tensor: " + what);
  };
  const int32_t max_code = (1 << q.bits) - 1;
  for (size_t i = 0; i < q.codes.size(); ++i)
    if (q.codes[i] > max_code) bad("codes[" + std::to_string(i) + "] is out of range");
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
  PluginBackend(const gptq_plugin_v1 &table, gptq_backend kind) : table_(table), kind_(kind) {}

  gptq_backend kind() const override { return kind_; }
  const char *name() const override { return table_.name; }

  std::unique_ptr<Hessian> create_hessian(int64_t dim, gptq_precision precision) override {
    gptq_plugin_hessian *handle = nullptr;
    Message msg;
    check(table_.hessian_create(dim, precision, &handle, msg.text, sizeof msg.text), table_,
          "hessian_create", msg);
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
    check(table_.quantize(h->handle(), job.weights, job.dtype, GPTQ_PLUGIN_MEMORY_HOST,
                          &job.config, &out, &plugin_stats, msg.text, sizeof msg.text),
          table_, "quantize", msg);
    q.act_order = out.act_order != 0;
    require_valid_result(q, table_.name);
    stats.loss = plugin_stats.loss;
    stats.damp_percent_used = plugin_stats.damp_percent_used;
    stats.damp_retries = plugin_stats.damp_retries;
    stats.fell_back_to_rtn = plugin_stats.fell_back_to_rtn;
    stats.dead_columns = plugin_stats.dead_columns;
    return q;
  }

  std::unique_ptr<PreparedWeights> prepare(const QTensorData &q) override {
    const gptq_plugin_qtensor view = view_of(q);
    gptq_plugin_weights *handle = nullptr;
    Message msg;
    check(table_.weights_prepare(&view, &handle, msg.text, sizeof msg.text), table_,
          "weights_prepare", msg);
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
    const gptq_plugin_qtensor view = view_of(q);
    gptq_plugin_matmul_options o{};
    o.struct_size = sizeof o;
    o.int8_activations = options.int8_activations ? 1 : 0;
    o.num_threads = options.num_threads;
    Message msg;
    check(table_.matmul(weights->handle(), &view, x, dtype, rows, bias, y,
                        GPTQ_PLUGIN_MEMORY_HOST, &o, msg.text, sizeof msg.text),
          table_, "matmul", msg);
  }

 private:
  const gptq_plugin_v1 &table_;
  gptq_backend kind_;
};

}  // namespace

std::unique_ptr<Backend> make_plugin_backend(const gptq_plugin_v1 &table, gptq_backend kind) {
  return std::make_unique<PluginBackend>(table, kind);
}

}  // namespace gptq
