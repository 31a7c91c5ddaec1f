// Reader for the .gold files written by tests/golden/make_golden.py: named
// little-endian arrays (see that script's docstring for the format).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gptq_test {

struct GoldArray {
  uint32_t dtype = 0;  // 0 float32, 1 int32, 2 uint8, 3 float64
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;

  int64_t count() const {
    int64_t c = 1;
    for (int64_t d : dims) c *= d;
    return c;
  }
  template <typename T>
  std::vector<T> as() const {
    std::vector<T> v(static_cast<size_t>(count()));
    if (bytes.size() != v.size() * sizeof(T)) throw std::runtime_error("gold: element size mismatch");
    std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  }
  int32_t scalar_i32() const { return as<int32_t>().at(0); }
};

inline std::map<std::string, GoldArray> read_gold(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "GPTQGOLD", 8) != 0) throw std::runtime_error("bad magic in " + path);
  auto u32 = [&] {
    uint32_t v;
    in.read(reinterpret_cast<char *>(&v), 4);
    return v;
  };
  const uint32_t records = u32();
  std::map<std::string, GoldArray> out;
  for (uint32_t r = 0; r < records; ++r) {
    std::string name(u32(), '\0');
    in.read(&name[0], static_cast<std::streamsize>(name.size()));
    GoldArray a;
    a.dtype = u32();
    const uint32_t ndim = u32();
    a.dims.resize(ndim);
    in.read(reinterpret_cast<char *>(a.dims.data()), static_cast<std::streamsize>(8 * ndim));
    static const size_t elem[] = {4, 4, 1, 8};
    if (a.dtype > 3) throw std::runtime_error("bad dtype in " + path);
    a.bytes.resize(static_cast<size_t>(a.count()) * elem[a.dtype]);
    in.read(reinterpret_cast<char *>(a.bytes.data()), static_cast<std::streamsize>(a.bytes.size()));
    if (!in) throw std::runtime_error("truncated " + path);
    out[name] = std::move(a);
  }
  return out;
}

}  // namespace gptq_test
