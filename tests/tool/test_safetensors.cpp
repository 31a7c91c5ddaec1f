// The safetensors reader and writer: round trips for every dtype, exact
// float conversions, and one test per way a header can lie, each checking
// that the error names the problem (and the file and tensor).
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "formats/safetensors.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed with everything in it afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gptq_st_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string &name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

void write_bytes(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

std::string read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file with the given header text and `data_bytes` bytes of data section.
void write_raw(const std::string &path, const std::string &header, size_t data_bytes) {
  write_bytes(path, le64(header.size()) + header + std::string(data_bytes, '\x5a'));
}

// The message of the ToolError that opening `path` throws ("" if none).
std::string open_error(const std::string &path) {
  try {
    SafetensorsFile::open(path);
  } catch (const ToolError &e) {
    return e.what();
  }
  return "";
}

std::string raw_error(const TempDir &dir, const std::string &header, size_t data_bytes) {
  const std::string path = dir.file("bad.safetensors");
  write_raw(path, header, data_bytes);
  return open_error(path);
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T> &v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + 7 * i);
  return b;
}

#define EXPECT_HAS(message, part) \
  EXPECT_NE(std::string(message).find(part), std::string::npos) << "message: " << (message)

TEST(SafetensorsDType, NamesAndSizes) {
  const std::vector<std::pair<TensorDType, std::pair<std::string, size_t>>> expected = {
      {TensorDType::F64, {"F64", 8}}, {TensorDType::F32, {"F32", 4}},
      {TensorDType::F16, {"F16", 2}}, {TensorDType::BF16, {"BF16", 2}},
      {TensorDType::I64, {"I64", 8}}, {TensorDType::I32, {"I32", 4}},
      {TensorDType::I16, {"I16", 2}}, {TensorDType::I8, {"I8", 1}},
      {TensorDType::U8, {"U8", 1}},   {TensorDType::BOOL, {"BOOL", 1}},
  };
  for (const auto &e : expected) {
    EXPECT_EQ(dtype_name(e.first), e.second.first);
    EXPECT_EQ(dtype_size(e.first), e.second.second);
  }
}

TEST(Safetensors, RoundTripEveryDtypeAndMetadata) {
  TempDir dir;
  const std::vector<TensorDType> all = {TensorDType::F64, TensorDType::F32, TensorDType::F16,
                                        TensorDType::BF16, TensorDType::I64, TensorDType::I32,
                                        TensorDType::I16,  TensorDType::I8,  TensorDType::U8,
                                        TensorDType::BOOL};
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.set_metadata("quantizer", "gptq \"test\"");
  std::vector<std::vector<uint8_t>> data;
  std::vector<std::vector<int64_t>> shapes;
  // Names chosen so that header order differs from alphabetical order.
  std::vector<std::string> names;
  for (size_t i = 0; i < all.size(); ++i) {
    names.push_back("t" + std::to_string(9 - i) + "." + dtype_name(all[i]));
    shapes.push_back({static_cast<int64_t>(i % 3 + 1), 3, static_cast<int64_t>(i + 1)});
    const size_t n = static_cast<size_t>(shapes[i][0] * shapes[i][1] * shapes[i][2]);
    data.push_back(pattern(n * dtype_size(all[i]), static_cast<uint8_t>(i)));
    w.add(names[i], all[i], shapes[i], data[i]);
  }
  w.add("scalar", TensorDType::F32, {}, as_bytes(std::vector<float>{2.5f}));
  w.add("empty", TensorDType::I32, {4, 0}, {});
  EXPECT_EQ(w.size(), all.size() + 2);
  const std::string path = dir.file("all.safetensors");
  w.write(path);

  // The header length is a multiple of 8, so the data section is aligned.
  const std::string raw = read_bytes(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(raw[i]);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(raw[8], '{');

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  ASSERT_EQ(f->tensors().size(), all.size() + 2);
  EXPECT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("quantizer"), "gptq \"test\"");
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const TensorInfo &t = f->tensors()[i];  // header order = insertion order
    EXPECT_EQ(t.name, names[i]);
    EXPECT_EQ(t.dtype, all[i]);
    EXPECT_EQ(t.shape, shapes[i]);
    EXPECT_EQ(t.offset, expected_offset);
    EXPECT_EQ(t.nbytes, data[i].size());
    EXPECT_EQ(static_cast<size_t>(t.numel()) * dtype_size(t.dtype), data[i].size());
    EXPECT_EQ(std::memcmp(f->data(t), data[i].data(), data[i].size()), 0) << t.name;
    EXPECT_EQ(f->find(names[i]), &t);
    expected_offset += t.nbytes;
  }
  const TensorInfo *scalar = f->find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numel(), 1);
  EXPECT_EQ(to_float32(*f, *scalar), std::vector<float>{2.5f});
  const TensorInfo *empty = f->find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_EQ(empty->nbytes, 0u);
  EXPECT_EQ(f->find("absent"), nullptr);
  EXPECT_EQ(raw.size(), 8 + header_len + expected_offset + 4);
}

TEST(Safetensors, NoTensorsGivesEmptyDataSection) {
  TempDir dir;
  SafetensorsWriter w;
  w.write(dir.file("none.safetensors"));
  auto f = SafetensorsFile::open(dir.file("none.safetensors"));
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());
  // A hand-written one with no padding and only a zero-size tensor.
  write_raw(dir.file("z.safetensors"), R"({"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
            0);
  auto z = SafetensorsFile::open(dir.file("z.safetensors"));
  ASSERT_EQ(z->tensors().size(), 1u);
  EXPECT_TRUE(to_float32(*z, z->tensors()[0]).empty());
}

TEST(Safetensors, F16ToFloat32IsExact) {
  TempDir dir;
  const std::vector<uint16_t> bits = {0x0000, 0x8000, 0x3c00, 0xc000, 0x3555, 0x7bff, 0x0400,
                                      0x0001, 0x03ff, 0x8001, 0x7c00, 0xfc00, 0x7e00};
  const std::vector<float> expected = {0.0f,
                                       -0.0f,
                                       1.0f,
                                       -2.0f,
                                       0.333251953125f,
                                       65504.0f,
                                       std::ldexp(1.0f, -14),  // smallest normal
                                       std::ldexp(1.0f, -24),  // smallest subnormal
                                       std::ldexp(1023.0f, -24),
                                       -std::ldexp(1.0f, -24),
                                       std::numeric_limits<float>::infinity(),
                                       -std::numeric_limits<float>::infinity(),
                                       0.0f /* NaN, checked below */};
  SafetensorsWriter w;
  w.add("h", TensorDType::F16, {static_cast<int64_t>(bits.size())}, as_bytes(bits));
  w.write(dir.file("h.safetensors"));
  auto f = SafetensorsFile::open(dir.file("h.safetensors"));
  const std::vector<float> got = to_float32(*f, f->tensors()[0]);
  ASSERT_EQ(got.size(), bits.size());
  for (size_t i = 0; i + 1 < bits.size(); ++i) {
    EXPECT_EQ(got[i], expected[i]) << "bits 0x" << std::hex << bits[i];
    EXPECT_EQ(std::signbit(got[i]), std::signbit(expected[i])) << "bits 0x" << std::hex << bits[i];
  }
  EXPECT_TRUE(std::isnan(got.back()));
}

TEST(Safetensors, BF16ToFloat32IsExact) {
  TempDir dir;
  const std::vector<uint16_t> bits = {0x3f80, 0xc040, 0x4049, 0x7f7f, 0x0001,
                                      0x8080, 0x7f80, 0xff80, 0x8000, 0x7fc0};
  const std::vector<float> expected = {1.0f,
                                       -3.0f,
                                       3.140625f,
                                       std::ldexp(255.0f, 120),  // largest finite bf16
                                       std::ldexp(1.0f, -133),   // smallest subnormal bf16
                                       -std::ldexp(1.0f, -126),
                                       std::numeric_limits<float>::infinity(),
                                       -std::numeric_limits<float>::infinity(),
                                       -0.0f,
                                       0.0f /* NaN */};
  SafetensorsWriter w;
  w.add("b", TensorDType::BF16, {2, 5}, as_bytes(bits));
  w.write(dir.file("b.safetensors"));
  auto f = SafetensorsFile::open(dir.file("b.safetensors"));
  const std::vector<float> got = to_float32(*f, *f->find("b"));
  ASSERT_EQ(got.size(), bits.size());
  for (size_t i = 0; i + 1 < bits.size(); ++i) {
    EXPECT_EQ(got[i], expected[i]) << "bits 0x" << std::hex << bits[i];
    EXPECT_EQ(std::signbit(got[i]), std::signbit(expected[i])) << "bits 0x" << std::hex << bits[i];
  }
  EXPECT_TRUE(std::isnan(got.back()));
}

TEST(Safetensors, F32AndF64ToFloat32) {
  TempDir dir;
  const std::vector<float> f32 = {1.5f, -0.1f, 3e38f, std::ldexp(1.0f, -149)};
  const std::vector<double> f64 = {0.1, -2.5, 1e300, -1e300, 3.4028235e38, 1e-50};
  SafetensorsWriter w;
  w.add("f32", TensorDType::F32, {2, 2}, as_bytes(f32));
  w.add("f64", TensorDType::F64, {6}, as_bytes(f64));
  w.add("i32", TensorDType::I32, {1}, as_bytes(std::vector<int32_t>{7}));
  w.write(dir.file("f.safetensors"));
  auto f = SafetensorsFile::open(dir.file("f.safetensors"));
  EXPECT_EQ(to_float32(*f, *f->find("f32")), f32);
  const std::vector<float> got = to_float32(*f, *f->find("f64"));
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0], 0.1f);  // rounded to nearest
  EXPECT_EQ(got[1], -2.5f);
  EXPECT_EQ(got[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(got[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(got[4], std::numeric_limits<float>::max());
  EXPECT_EQ(got[5], 0.0f);
  try {
    to_float32(*f, *f->find("i32"));
    FAIL() << "I32 converted to float";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "i32");
    EXPECT_HAS(e.what(), "dtype I32");
  }
}

TEST(SafetensorsWriter, RefusesWrongSizesAndDuplicates) {
  SafetensorsWriter w;
  try {
    w.add("x", TensorDType::F16, {2, 3}, std::vector<uint8_t>(11));
    FAIL() << "wrong byte count accepted";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "x");
    EXPECT_HAS(e.what(), "needs 12 bytes, got 11");
  }
  w.add("x", TensorDType::F16, {2, 3}, std::vector<uint8_t>(12));
  try {
    w.add("x", TensorDType::U8, {1}, std::vector<uint8_t>(1));
    FAIL() << "duplicate accepted";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "x added twice");
  }
  EXPECT_THROW(w.add("neg", TensorDType::U8, {-1}, {}), ToolError);
  EXPECT_THROW(w.add("__metadata__", TensorDType::U8, {1}, {0}), ToolError);
  EXPECT_EQ(w.size(), 1u);
}

TEST(SafetensorsWriter, ReportsIoFailureWithStrerror) {
  TempDir dir;
  SafetensorsWriter w;
  w.add("x", TensorDType::U8, {1}, {1});
  try {
    w.write(dir.file("no/such/dir/x.safetensors"));
    FAIL() << "write into a missing directory succeeded";
  } catch (const ToolError &e) {
    EXPECT_HAS(e.what(), "cannot create");
    EXPECT_HAS(e.what(), std::strerror(ENOENT));
  }
}

TEST(SafetensorsWriter, RemovesPartialFileOnWriteFailure) {
  // A file-size limit makes the data write fail (EFBIG) after the header
  // went out; done in a child so the limit does not leak into other tests.
  TempDir dir;
  const std::string path = dir.file("partial.safetensors");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {4096, 4096};
    setrlimit(RLIMIT_FSIZE, &lim);
    SafetensorsWriter w;
    w.add("big", TensorDType::U8, {100000}, std::vector<uint8_t>(100000, 3));
    try {
      w.write(path);
    } catch (const ToolError &e) {
      const bool named = std::string(e.what()).find(std::strerror(EFBIG)) != std::string::npos;
      _exit(named ? 0 : 2);
    }
    _exit(3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: message without strerror, 3: no error";
  EXPECT_FALSE(fs::exists(path));
}

// ---- reader errors ----

TEST(SafetensorsErrors, FileShorterThanEightBytes) {
  TempDir dir;
  write_bytes(dir.file("short.safetensors"), "abcde");
  const std::string msg = open_error(dir.file("short.safetensors"));
  EXPECT_HAS(msg, dir.file("short.safetensors"));
  EXPECT_HAS(msg, "shorter than the 8-byte header length");
  write_bytes(dir.file("empty.safetensors"), "");
  EXPECT_HAS(open_error(dir.file("empty.safetensors")), "file is 0 bytes");
}

TEST(SafetensorsErrors, MissingFile) {
  TempDir dir;
  const std::string msg = open_error(dir.file("nope.safetensors"));
  EXPECT_HAS(msg, "nope.safetensors: cannot open");
  EXPECT_HAS(msg, std::strerror(ENOENT));
}

TEST(SafetensorsErrors, HeaderLengthLargerThanFileOrAbsurd) {
  TempDir dir;
  write_bytes(dir.file("a.safetensors"), le64(100) + "{}");
  EXPECT_HAS(open_error(dir.file("a.safetensors")), "header length 100 bytes is larger than the file");
  write_bytes(dir.file("b.safetensors"), le64(uint64_t{1} << 40) + "{}");
  EXPECT_HAS(open_error(dir.file("b.safetensors")), "absurd");
  write_bytes(dir.file("c.safetensors"), le64(~uint64_t{0}) + "{}");
  EXPECT_HAS(open_error(dir.file("c.safetensors")), "absurd");
}

TEST(SafetensorsErrors, HeaderNotJsonOrNotObject) {
  TempDir dir;
  EXPECT_HAS(raw_error(dir, "{\"a\": ", 0), "header is not valid JSON");
  EXPECT_HAS(raw_error(dir, "[1, 2]", 0), "header is not a JSON object");
  EXPECT_HAS(raw_error(dir, R"({"a": 5})", 0), "tensor a: header entry is not a JSON object");
  EXPECT_HAS(raw_error(dir, R"({"__metadata__": {"k": 1}})", 0), "metadata \"k\" is not a string");
  EXPECT_HAS(raw_error(dir, R"({"__metadata__": [1]})", 0), "\"__metadata__\" is not a JSON object");
}

TEST(SafetensorsErrors, EntryMissingFields) {
  TempDir dir;
  const std::string msg1 = raw_error(dir, R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4);
  EXPECT_HAS(msg1, "bad.safetensors: tensor w: header entry has no \"dtype\"");
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
             "tensor w: header entry has no \"shape\"");
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": [1]}})", 4),
             "tensor w: header entry has no \"data_offsets\"");
}

TEST(SafetensorsErrors, EntryWrongJsonTypes) {
  TempDir dir;
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4),
             "\"dtype\" is not a string");
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4),
             "\"shape\" is not an array");
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})",
                       4),
             "a dimension of \"shape\" is 1.5, not an integer");
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
             "\"data_offsets\" must be two non-negative integers");
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})",
                       4),
             "\"data_offsets\" must be two non-negative integers");
}

TEST(SafetensorsErrors, UnknownDtype) {
  TempDir dir;
  const std::string msg =
      raw_error(dir, R"({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4);
  EXPECT_HAS(msg, "tensor w");
  EXPECT_HAS(msg, "unknown dtype \"F8_E4M3\"");
  EXPECT_HAS(msg, "BF16");  // lists the supported ones
}

TEST(SafetensorsErrors, NegativeDimensionAndOverflow) {
  TempDir dir;
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})",
                       8),
             "shape [-1, 2] has a negative dimension");
  EXPECT_HAS(raw_error(dir,
                       R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296],)"
                       R"( "data_offsets": [0, 8]}})",
                       8),
             "numel overflow");
  // numel fits but numel * 8 bytes does not.
  EXPECT_HAS(raw_error(dir,
                       R"({"w": {"dtype": "F64", "shape": [4611686018427387904],)"
                       R"( "data_offsets": [0, 8]}})",
                       8),
             "numel overflow");
  EXPECT_HAS(raw_error(dir,
                       R"({"w": {"dtype": "U8", "shape": [18446744073709551615],)"
                       R"( "data_offsets": [0, 8]}})",
                       8),
             "numel overflow");
}

TEST(SafetensorsErrors, HeaderLiesAboutSize) {
  TempDir dir;
  const std::string msg =
      raw_error(dir, R"({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 10]}})", 12);
  EXPECT_HAS(msg, "tensor w");
  EXPECT_HAS(msg, "header says shape [2, 3] of F16 = 12 bytes but data_offsets span 10");
}

TEST(SafetensorsErrors, BeginAfterEnd) {
  TempDir dir;
  EXPECT_HAS(raw_error(dir, R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8),
             "tensor w: data_offsets [8, 4] begin after they end");
}

TEST(SafetensorsErrors, TruncatedFile) {
  TempDir dir;
  SafetensorsWriter w;
  w.add("a", TensorDType::F32, {4}, std::vector<uint8_t>(16, 1));
  w.add("b", TensorDType::F16, {8}, std::vector<uint8_t>(16, 2));
  const std::string path = dir.file("cut.safetensors");
  w.write(path);
  fs::resize_file(path, fs::file_size(path) - 5);
  const std::string msg = open_error(path);
  EXPECT_HAS(msg, path);
  EXPECT_HAS(msg, "file is truncated: tensor b needs bytes up to 32 of the data section, the file "
                  "has 27");
}

TEST(SafetensorsErrors, OverlappingTensors) {
  TempDir dir;
  const std::string msg = raw_error(dir,
                                    R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},)"
                                    R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                                    12);
  EXPECT_HAS(msg, "tensors b (bytes 0..8) and a (bytes 4..12) overlap");
  // Touching is fine, and so are zero-size tensors at the same offset.
  EXPECT_EQ(raw_error(dir,
                      R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},)"
                      R"( "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},)"
                      R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                      8),
            "");
}

}  // namespace
}  // namespace gptqtool
