// Search order for a plugin, each step only if the previous one found
// nothing to try:
//   1. its environment variable ($GPTQ_CUDA_PLUGIN), a full path (an
//      explicit override: nothing else is tried, so a typo is reported
//      instead of silently loading another copy);
//   2. its file (libgptq-cuda.so) in the directory libgptq.so itself was
//      loaded from (found with dladdr), i.e. where `meson install` puts both.
// The system library path is deliberately not searched: a plugin must match
// the core it sits next to.
#include "plugin_loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "plugin_abi.h"
#include "plugin_backend.h"
#include "plugin_self_check.h"

namespace gptq {
namespace {

// Where libgptq.so was loaded from, or "" if dladdr cannot tell.
std::string core_library_dir() {
  Dl_info info{};
  // Any function defined in this library identifies it.
  if (dladdr(reinterpret_cast<const void *>(&plugin_outcome), &info) == 0 || info.dli_fname == nullptr)
    return "";
  const std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// Names of the required entries a table leaves NULL, and of those it has.
void required_entries(const gptq_plugin_table &t, std::vector<std::string> &present,
                      std::vector<std::string> &missing) {
  const std::pair<const char *, bool> entries[] = {
      {"probe", t.probe != nullptr},
      {"hessian_create", t.hessian_create != nullptr},
      {"hessian_destroy", t.hessian_destroy != nullptr},
      {"hessian_add_batch", t.hessian_add_batch != nullptr},
      {"hessian_merge", t.hessian_merge != nullptr},
      {"hessian_export", t.hessian_export != nullptr},
      {"quantize", t.quantize != nullptr},
      {"weights_prepare", t.weights_prepare != nullptr},
      {"weights_destroy", t.weights_destroy != nullptr},
      {"matmul", t.matmul != nullptr},
      {"memory_of", t.memory_of != nullptr},
      {"scan", t.scan != nullptr},
      {"copy_to_host", t.copy_to_host != nullptr},
  };
  for (const auto &e : entries) (e.second ? present : missing).push_back(e.first);
}

std::string join(const std::vector<std::string> &items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i == 0 ? "" : ", ") + items[i];
  return s;
}

// What loading found; the table is copied so entries past the plugin's
// struct_size read as NULL.
struct Loaded {
  gptq_plugin_table table{};
  std::unique_ptr<Backend> backend;
};

PluginOutcome load_plugin(const PluginSpec &spec) {
  PluginOutcome out;
  const std::string label = spec.label;

  // 1. Find.
  std::string path;
  const char *env = std::getenv(spec.env);
  if (env != nullptr && env[0] != '\0') {
    path = env;
    if (access(path.c_str(), F_OK) != 0) {
      out.reason = "the " + label + " plugin was not found: " + spec.env + " is " + path +
                   ", which does not exist";
      return out;
    }
  } else {
    const std::string dir = core_library_dir();
    if (dir.empty()) {
      out.reason = "the " + label + " plugin was not found: the directory of libgptq could not "
                   "be determined; set " + spec.env + " to the plugin's full path";
      return out;
    }
    path = dir + "/" + spec.file;
    if (access(path.c_str(), F_OK) != 0) {
      out.reason = "the " + label + " plugin was not found (tried " + path +
                   "; this libgptq may have been built without " + label + ", or set " +
                   spec.env + " to the plugin's full path)";
      return out;
    }
  }

  // 2. Load. RTLD_LOCAL keeps the plugin's symbols (and CUDA's) out of the
  // global namespace; RTLD_NOW reports a missing library here, not mid-call.
  dlerror();
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char *why = dlerror();
    out.reason = "the " + label + " plugin " + path + " could not be loaded: " +
                 (why ? why : "unknown error");
    return out;
  }
  dlerror();
  void *sym = dlsym(handle, GPTQ_PLUGIN_ENTRY_NAME);
  if (sym == nullptr) {
    out.reason = path + " is not a libgptq backend plugin: it has no symbol " GPTQ_PLUGIN_ENTRY_NAME;
    dlclose(handle);  // nothing of it has run: safe to unload
    return out;
  }
  gptq_plugin_entry_fn entry;
  std::memcpy(&entry, &sym, sizeof entry);  // object → function pointer, as POSIX allows
  const gptq_plugin_table *table = entry();
  constexpr size_t kHeader = offsetof(gptq_plugin_table, abi_version) + sizeof(uint32_t);
  if (table == nullptr || table->struct_size < kHeader) {
    out.reason = path + ": " GPTQ_PLUGIN_ENTRY_NAME " returned " +
                 (table == nullptr ? std::string("NULL") : "a table too small to hold its version");
    dlclose(handle);
    return out;
  }
  if (table->abi_version != GPTQ_PLUGIN_ABI_VERSION) {
    out.reason = path + ": plugin ABI " + std::to_string(table->abi_version) +
                 ", library expects " + std::to_string(GPTQ_PLUGIN_ABI_VERSION);
    dlclose(handle);
    return out;
  }
  // From here on the plugin is never unloaded: probe may start the CUDA
  // runtime (threads, atexit handlers), which must not outlive its code.
  // One record per plugin, kept (never freed) whether or not the plugin
  // turns out usable: its table and backend may be in use until the process
  // ends. Called under plugin_outcome's lock.
  static auto &records = *new std::vector<std::unique_ptr<Loaded>>;
  records.push_back(std::make_unique<Loaded>());
  Loaded &loaded = *records.back();
  std::memcpy(&loaded.table, table, std::min(table->struct_size, sizeof loaded.table));
  loaded.table.struct_size = sizeof loaded.table;
  if (loaded.table.name == nullptr) loaded.table.name = spec.file;

  // 3. Probe, then check completeness; report both problems if both exist,
  // the device first since that is what a user can act on.
  std::vector<std::string> present, missing;
  required_entries(loaded.table, present, missing);
  std::string problems;
  if (loaded.table.probe != nullptr) {
    char msg[GPTQ_PLUGIN_MSG_SIZE] = {};
    const int32_t status = loaded.table.probe(msg, sizeof msg);
    const std::string text(msg, strnlen(msg, sizeof msg));
    if (status != GPTQ_OK)
      problems = path + ": " + (text.empty() ? "probe failed without a message" : text);
    else
      out.description = text.empty() ? std::string(loaded.table.name) : text;
  }
  if (!missing.empty()) {
    if (!problems.empty()) problems += "; also, ";
    problems += path + " implements only " + join(present) + "; " + join(missing) +
                (missing.size() == 1 ? " is" : " are") + " missing";
  }
  if (!problems.empty()) {
    out.description.clear();
    out.reason = problems;
    return out;
  }
  loaded.backend = make_plugin_backend(loaded.table, spec.kind);

  // 4. Check its results against the CPU backend's on a small problem.
  const std::string mismatch = self_check_failure(*loaded.backend);
  if (!mismatch.empty()) {
    out.description.clear();
    out.reason = path + " failed its self-check against the CPU backend: " + mismatch;
    return out;
  }
  out.backend = loaded.backend.get();
  return out;
}

}  // namespace

const std::vector<PluginSpec> &plugin_specs() {
  static const std::vector<PluginSpec> specs = {
      {GPTQ_BACKEND_CUDA, "CUDA", "libgptq-cuda.so", "GPTQ_CUDA_PLUGIN"},
  };
  return specs;
}

const PluginSpec *plugin_spec(gptq_backend kind) {
  for (const PluginSpec &s : plugin_specs())
    if (s.kind == kind) return &s;
  return nullptr;
}

const PluginOutcome &plugin_outcome(const PluginSpec &spec) {
  // Each plugin is loaded exactly once, thread-safely. The outcomes (and the
  // backends they point to) live for the process: never destroyed, since
  // another static's destructor may still use a backend at exit.
  static std::mutex mutex;
  static auto &outcomes = *new std::map<gptq_backend, PluginOutcome>;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = outcomes.find(spec.kind);
  if (it == outcomes.end()) it = outcomes.emplace(spec.kind, load_plugin(spec)).first;
  return it->second;
}

}  // namespace gptq
