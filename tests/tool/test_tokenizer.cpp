// The tool's tokenizer against Hugging Face `tokenizers`.
//
// data/tokenizer/ holds six small tokenizer.json files, one per pipeline
// style the tool supports (SmolLM2, GPT-2, Llama-3, Qwen2, SentencePiece-style
// Llama-2, Metaspace), and expected.json: the reference ids and decodes of
// every test text, made by the real library (make_fixtures.py there says how
// and with which version). Every id must match exactly; a byte-level
// tokenizer must also give the text back from its ids. The rest checks that
// a bad or unsupported file is refused with a message that says why.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "common/interrupt.h"
#include "common/tool_error.h"
#include "formats/token_data.h"
#include "tokenizer/tokenizer.h"

#ifndef GPTQ_TOOL_DATA_DIR
#error "define GPTQ_TOOL_DATA_DIR as the path of tests/tool/data"
#endif

namespace {

using gptqtool::Tokenizer;
using gptqtool::ToolError;
using nlohmann::json;

const std::string kDir = std::string(GPTQ_TOOL_DATA_DIR) + "/tokenizer/";

const json &expected() {
  static const json e = [] {
    std::ifstream in(kDir + "expected.json");
    if (!in) throw std::runtime_error("cannot open " + kDir + "expected.json");
    return json::parse(in);
  }();
  return e;
}

const json &entry(const std::string &name) {
  for (const json &t : expected()["tokenizers"]) {
    if (t["name"] == name) return t;
  }
  throw std::runtime_error("no fixture named " + name);
}

// Shows invisible and non-ASCII bytes in failure messages.
std::string escaped(const std::string &s) {
  return json(s).dump(-1, ' ', true, json::error_handler_t::replace);
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, IdsMatchTheReference) {
  const json &e = entry(GetParam());
  const auto tok = Tokenizer::from_file(kDir + e["file"].get<std::string>());
  const json &texts = expected()["texts"];
  int checked = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (e["ids"][i].is_null()) continue;  // skipped by the generator (NFC)
    const std::string text = texts[i];
    const auto want = e["ids"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(text), want) << "text " << i << ": " << escaped(text);
    ++checked;
  }
  EXPECT_GT(checked, 80);
}

TEST_P(Fixture, DecodeMatchesTheReference) {
  const json &e = entry(GetParam());
  const auto tok = Tokenizer::from_file(kDir + e["file"].get<std::string>());
  for (size_t i = 0; i < e["ids"].size(); ++i) {
    if (e["ids"][i].is_null()) continue;
    const auto ids = e["ids"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids), e["decoded"][i].get<std::string>()) << "text " << i;
  }
}

// Byte-level tokenizers without a prefix space give every text back; the
// generator records that the reference does so for these three.
class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, DecodeOfEncodeIsTheText) {
  const json &e = entry(GetParam());
  ASSERT_TRUE(e["byte_level"].get<bool>() && e["round_trips"].get<bool>());
  const auto tok = Tokenizer::from_file(kDir + e["file"].get<std::string>());
  const json &texts = expected()["texts"];
  for (size_t i = 0; i < texts.size(); ++i) {
    if (e["ids"][i].is_null()) continue;
    const std::string text = texts[i];
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << "text " << i << ": " << escaped(text);
  }
}

INSTANTIATE_TEST_SUITE_P(ByteLevel, RoundTrip, ::testing::Values("smollm2", "llama3", "qwen2"),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           return info.param;
                         });

// The word cache must not change anything: the same text twice, and each
// text alone after all the others were seen, give the same ids.
TEST_P(Fixture, CacheIsTransparent) {
  const json &e = entry(GetParam());
  const auto tok = Tokenizer::from_file(kDir + e["file"].get<std::string>());
  const json &texts = expected()["texts"];
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < texts.size(); ++i) {
      if (e["ids"][i].is_null()) continue;
      EXPECT_EQ(tok->encode(texts[i].get<std::string>()),
                e["ids"][i].get<std::vector<int32_t>>())
          << "pass " << pass << ", text " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, Fixture,
                         ::testing::Values("smollm2", "gpt2", "llama3", "qwen2", "spm",
                                           "metaspace"),
                         [](const ::testing::TestParamInfo<std::string> &info) {
                           return info.param;
                         });

TEST(Tokenizer, VocabularyQueries) {
  const auto tok = Tokenizer::from_file(kDir + "smollm2.json");
  EXPECT_EQ(tok->vocab_size(), 1200);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok->token_id("<|im_start|>"), 1);
  EXPECT_EQ(tok->token_id("<|im_end|>"), 2);
  EXPECT_EQ(tok->token_id("<|no such token|>"), -1);
  EXPECT_EQ(tok->token_id("a"), tok->encode("a").at(0));
  EXPECT_EQ(tok->id_to_token(0), "<|endoftext|>");
  EXPECT_EQ(tok->id_to_token(-1), "");
  EXPECT_EQ(tok->id_to_token(1200), "");
  // Ids out of range are skipped, not a crash.
  EXPECT_EQ(tok->decode({-5, 1 << 30}), "");
  EXPECT_TRUE(tok->encode("").empty());

  const auto spm = Tokenizer::from_file(kDir + "spm.json");
  EXPECT_EQ(spm->token_id("<unk>"), 0);
  EXPECT_EQ(spm->token_id("<0x0A>"), 3 + 0x0A);
}

// Bytes that are not UTF-8 never occur in the reference (Python strings are
// Unicode), so the expectations here are the tool's own: a byte-level model
// keeps every byte, the decode shows U+FFFD for them, byte fallback spells
// them as <0xAB>.
TEST(Tokenizer, InvalidUtf8IsKept) {
  const std::string bad = std::string("ok \xFF\xC3 x\xE2\x82 \xED\xA0\x80!");
  const auto tok = Tokenizer::from_file(kDir + "smollm2.json");
  const std::vector<int32_t> ids = tok->encode(bad);
  std::string raw;  // the byte-level tokens mapped back to bytes, by hand
  for (int32_t id : ids) raw += tok->decode({id});
  EXPECT_EQ(tok->decode(ids),
            "ok \xEF\xBF\xBD\xEF\xBF\xBD x\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!");
  for (const char *name : {"gpt2.json", "llama3.json", "qwen2.json", "metaspace.json"}) {
    EXPECT_NO_THROW(Tokenizer::from_file(kDir + name)->encode(bad)) << name;
  }
  const auto spm = Tokenizer::from_file(kDir + "spm.json");
  const std::vector<int32_t> sp = spm->encode("\xFF");
  ASSERT_EQ(sp.size(), 2u);  // "▁" then the byte
  EXPECT_EQ(sp[1], spm->token_id("<0xFF>"));
}

// ~250 KB through the SmolLM2-style tokenizer; generous bound, it is a
// guard against a quadratic path, not a benchmark.
TEST(Tokenizer, LargeTextIsFast) {
  std::string text;
  for (const json &t : expected()["texts"]) text += t.get<std::string>() + "\n";
  const std::string unit = text;
  while (text.size() < 250000) text += unit;
  const auto tok = Tokenizer::from_file(kDir + "smollm2.json");
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(s, 5.0);
  const auto spm = Tokenizer::from_file(kDir + "spm.json");  // one word per segment
  EXPECT_FALSE(spm->encode(text).empty());
}

// --- refusals ---------------------------------------------------------------

class TempFile {
 public:
  explicit TempFile(const std::string &content) {
    path_ = ::testing::TempDir() + "tokenizer_test_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json";
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// The message of the ToolError that loading `content` throws.
std::string load_error(const std::string &content) {
  TempFile f(content);
  try {
    Tokenizer::from_file(f.path());
  } catch (const ToolError &e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path()), std::string::npos) << "the message names the file: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no ToolError for " << content.substr(0, 200);
  return "";
}

json small_tokenizer() {
  std::ifstream in(kDir + "smollm2.json");
  return json::parse(in);
}

bool has(const std::string &msg, const std::string &part) {
  return msg.find(part) != std::string::npos;
}

TEST(TokenizerErrors, MissingFile) {
  try {
    Tokenizer::from_file(kDir + "no_such_tokenizer.json");
    FAIL() << "no error";
  } catch (const ToolError &e) {
    EXPECT_TRUE(has(e.what(), "no_such_tokenizer.json")) << e.what();
    EXPECT_TRUE(has(e.what(), "cannot open")) << e.what();
  }
}

TEST(TokenizerErrors, InvalidJson) {
  const std::string msg = load_error("{\"model\": {\"type\": \"BPE\", ");
  EXPECT_TRUE(has(msg, "not valid JSON")) << msg;
  EXPECT_TRUE(has(load_error("[1, 2]"), "top level"));
}

TEST(TokenizerErrors, UnsupportedModelType) {
  json j = small_tokenizer();
  j["model"]["type"] = "WordPiece";
  const std::string msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "model type \"WordPiece\" is not supported")) << msg;
}

TEST(TokenizerErrors, UnsupportedSplitRegex) {
  json j = small_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"Regex", "\\w+|[^\\w\\s]+"}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  const std::string msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "Split regex")) << msg;
  EXPECT_TRUE(has(msg, "\\\\w+|[^\\\\w\\\\s]+")) << msg;  // the pattern, JSON-quoted
  EXPECT_TRUE(has(msg, "pre_tokenizer")) << msg;
}

TEST(TokenizerErrors, UnsupportedPipelineParts) {
  json j = small_tokenizer();
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", json::array({{{"type", "NFD"}}})}};
  std::string msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "normalizer type \"NFD\" is not supported")) << msg;
  EXPECT_TRUE(has(msg, "normalizer.normalizers[0]")) << msg;

  j = small_tokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "pre_tokenizer type \"Whitespace\"")) << msg;

  j = small_tokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "decoder type \"WordPiece\"")) << msg;

  j = small_tokenizer();
  j["model"]["dropout"] = 0.1;
  EXPECT_TRUE(has(load_error(j.dump()), "dropout"));
}

TEST(TokenizerErrors, MalformedModel) {
  json j = small_tokenizer();
  j["model"].erase("vocab");
  EXPECT_TRUE(has(load_error(j.dump()), "model has no \"vocab\""));

  j = small_tokenizer();
  j["model"]["merges"][0] = "a b c";
  std::string msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "model.merges[0]")) << msg;

  j = small_tokenizer();
  j["model"]["merges"][3] = json::array({"Ġ", "no-such-token"});
  msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "model.merges[3]") && has(msg, "not in the vocabulary")) << msg;

  j = small_tokenizer();
  j["added_tokens"][0]["id"] = -3;
  msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "added_tokens[0].id")) << msg;
}

// Integers are read with their range checked, never converted blindly: a
// float or an id beyond int32 is refused by name.
TEST(TokenizerErrors, IntegersOutOfRange) {
  json j = small_tokenizer();
  j["added_tokens"][0]["id"] = 4294967296LL;  // would wrap to 0 as an int32
  std::string msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "added_tokens[0].id (a token id) is 4294967296; it must be in [0, 2147483647]"))
      << msg;
  j = small_tokenizer();
  j["added_tokens"][0]["id"] = 18446744073709551615ULL;
  msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "is 18446744073709551615; it must be in [0, 2147483647]")) << msg;
  j = small_tokenizer();
  j["added_tokens"][0]["id"] = 9.2e19;
  msg = load_error(j.dump());
  EXPECT_TRUE(has(msg, "added_tokens[0].id (a token id) is 9.2e+19, not an integer")) << msg;
}

}  // namespace

// --- text files -------------------------------------------------------------

namespace gz {

std::string compress(const std::string &text) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(text.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef *>(&out[0]);
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string write(const std::string &name, const std::string &bytes) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

}  // namespace gz

// A .gz file must be gzip and whole: a truncated download was read up to
// where it stopped, and a plain file named .gz was read as text, both
// silently.
TEST(TextFiles, GzipIsCheckedByMagicAndEndState) {
  const auto tok = Tokenizer::from_file(kDir + "smollm2.json");
  std::string text;
  for (const json &t : expected()["texts"]) text += t.get<std::string>() + "\n";
  while (text.size() < 200000) text += text;
  const std::vector<int32_t> want = tok->encode(text);
  const std::string packed = gz::compress(text);
  EXPECT_EQ(gptqtool::tokenize_text_file(*tok, gz::write("whole.txt.gz", packed)), want);
  // Two members, as `cat a.gz b.gz` makes: the concatenated text.
  const std::string half = text.substr(0, text.size() / 2);
  EXPECT_EQ(gptqtool::tokenize_text_file(
                *tok, gz::write("two.txt.gz", gz::compress(half) +
                                                  gz::compress(text.substr(half.size())))),
            want);
  auto error_of = [&](const std::string &name, const std::string &bytes) {
    try {
      gptqtool::tokenize_text_file(*tok, gz::write(name, bytes));
    } catch (const ToolError &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  for (const size_t keep : {packed.size() - 4, packed.size() - 8, packed.size() / 2, size_t{12}}) {
    const std::string m = error_of("cut.txt.gz", packed.substr(0, keep));
    EXPECT_NE(m.find("truncated gzip file"), std::string::npos) << keep << ": " << m;
  }
  std::string bad_crc = packed;
  bad_crc[bad_crc.size() - 6] ^= 0x55;
  EXPECT_NE(error_of("crc.txt.gz", bad_crc).find("corrupt gzip data (incorrect data check)"),
            std::string::npos);
  EXPECT_NE(error_of("tail.txt.gz", packed + "junk").find("4 bytes of data that is not gzip"),
            std::string::npos);
  EXPECT_NE(error_of("plain.txt.gz", text).find("not a gzip file"), std::string::npos);
  EXPECT_NE(error_of("packed.txt", packed).find("is not named .gz"), std::string::npos);
}

// Tokenizing and decompressing a long text stop once a signal asks (they
// never checked).
TEST(TextFiles, TokenizingAndDecompressingStopOnASignal) {
  struct ClearFlag {
    ~ClearFlag() { gptqtool::set_interrupted_for_testing(false); }
  } clear;
  const auto tok = Tokenizer::from_file(kDir + "smollm2.json");
  const std::string text = "A few words of text.\n";
  const std::string plain = gz::write("signal.txt", text);
  const std::string packed = gz::write("signal.txt.gz", gz::compress(text));
  gptqtool::set_interrupted_for_testing(true);
  for (const std::string &path : {plain, packed}) {
    try {
      gptqtool::tokenize_text_file(*tok, path);
      ADD_FAILURE() << path << " was read to its end";
    } catch (const ToolError &e) {
      EXPECT_STREQ(e.what(), "interrupted") << path;
    }
  }
  EXPECT_THROW(tok->encode(text), ToolError);
}
