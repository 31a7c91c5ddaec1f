// Calibration records from JSON Lines and JSON arrays: text, bare strings
// and chat messages (rendered through a chat template), each tokenized on
// its own; and an error naming the file, line and problem for every way a
// dataset can be unusable (a misnamed text field above all).
#include <gtest/gtest.h>

#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/tool_error.h"
#include "formats/calibration_records.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace gptqtool {
namespace {

namespace fs = std::filesystem;

const char kChatMl[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

class CalibrationRecords : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gptq_calib_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string &name, const std::string &text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string error_of(const std::string &name, const std::string &text,
                       const std::string &field = "text") {
    try {
      read_calibration_records(write(name, text), field);
    } catch (const ToolError &e) {
      return e.what();
    }
    return "(no error)";
  }
  std::string dir_;
};

TEST_F(CalibrationRecords, JsonLinesArraysStringsAndChat) {
  auto records = read_calibration_records(
      write("a.jsonl", "{\"text\": \"first\", \"id\": 1}\n\n  \n\"second\"\r\n"
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                       "{\"role\": \"assistant\", \"content\": \"hello\"}]}\n"),
      "text");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].text, "first");
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[1].text, "second");
  EXPECT_EQ(records[1].line, 4);
  EXPECT_TRUE(records[2].chat);
  ASSERT_EQ(records[2].messages.size(), 2u);
  EXPECT_EQ(records[2].messages[1].role, "assistant");
  EXPECT_EQ(records[2].messages[1].content, "hello");
  EXPECT_TRUE(any_chat_record(records));

  records = read_calibration_records(
      write("b.json", "  [{\"content\": \"one\"}, {\"content\": \"two\", \"text\": \"x\"}]"),
      "content");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].text, "two");
  EXPECT_FALSE(any_chat_record(records));

  // gzip, named .gz.
  const std::string gz = dir_ + "/c.jsonl.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  const std::string line = "{\"text\": \"zipped\"}\n";
  gzwrite(f, line.data(), static_cast<unsigned>(line.size()));
  gzclose(f);
  records = read_calibration_records(gz, "text");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].text, "zipped");
}

TEST_F(CalibrationRecords, EachRecordIsTokenizedOnItsOwnAndChatIsRendered) {
  auto tok = Tokenizer::from_file(std::string(GPTQ_TOOL_DATA_DIR) + "/tokenizer/smollm2.json");
  const ChatTemplate chat = ChatTemplate::recognise(kChatMl, "", "");
  const auto records = read_calibration_records(
      write("d.jsonl", "{\"text\": \"Hello\"}\n{\"text\": \" world\"}\n"
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}]}\n"),
      "text");
  const std::vector<int32_t> ids = tokenize_calibration_records(records, *tok, &chat, "d.jsonl");
  std::vector<int32_t> want = tok->encode("Hello");
  for (const char *part : {" world", "<|im_start|>user\nHi there<|im_end|>\n"}) {
    const auto more = tok->encode(part);
    want.insert(want.end(), more.begin(), more.end());
  }
  EXPECT_EQ(ids, want);
  // The chat markers are single special tokens, not their spelling.
  EXPECT_NE(std::find(ids.begin(), ids.end(), tok->token_id("<|im_start|>")), ids.end());
  try {
    tokenize_calibration_records(records, *tok, nullptr, "d.jsonl");
    FAIL() << "a chat record without a template was accepted";
  } catch (const ToolError &e) {
    EXPECT_NE(std::string(e.what()).find("d.jsonl:3: a chat record"), std::string::npos)
        << e.what();
  }
  const auto empty = read_calibration_records(write("e.jsonl", "{\"text\": \"\"}\n\"\"\n"), "text");
  EXPECT_THROW(tokenize_calibration_records(empty, *tok, &chat, "e.jsonl"), ToolError);
}

TEST_F(CalibrationRecords, BadDatasetsAreRefusedWithFileLineAndReason) {
  std::string m = error_of("f.jsonl", "{\"text\": \"ok\"}\n{\"content\": \"x\", \"id\": 2}\n");
  EXPECT_NE(m.find("f.jsonl:2: the record has no \"text\" field and no \"messages\""),
            std::string::npos) << m;
  EXPECT_NE(m.find("\"content\", \"id\""), std::string::npos) << m;
  EXPECT_NE(m.find("--text-field"), std::string::npos) << m;
  m = error_of("g.jsonl", "{\"text\": 3}\n");
  EXPECT_NE(m.find("g.jsonl:1: field \"text\" is number, not a string"), std::string::npos) << m;
  m = error_of("h.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"\n");
  EXPECT_NE(m.find("h.jsonl:2: not a JSON value"), std::string::npos) << m;
  m = error_of("i.jsonl", "  \n\n");
  EXPECT_NE(m.find("holds no records"), std::string::npos) << m;
  m = error_of("j.json", "[]");
  EXPECT_NE(m.find("holds no records"), std::string::npos) << m;
  m = error_of("k.json", "[{\"text\": \"a\"}, 7]");
  EXPECT_NE(m.find("k.json record:2: a record must be an object or a string"), std::string::npos)
      << m;
  m = error_of("l.json", "[{\"text\": \"a\"}");
  EXPECT_NE(m.find("not a valid JSON array"), std::string::npos) << m;
  m = error_of("m.jsonl", "{\"messages\": []}\n");
  EXPECT_NE(m.find("\"messages\" must be a non-empty list"), std::string::npos) << m;
  m = error_of("n.jsonl", "{\"messages\": [{\"role\": \"user\"}]}\n");
  EXPECT_NE(m.find("string \"role\" and \"content\""), std::string::npos) << m;
  m = error_of("o.jsonl.gz", "{\"text\": \"not zipped\"}\n");
  EXPECT_NE(m.find("not a gzip file"), std::string::npos) << m;
  EXPECT_THROW(read_calibration_records(dir_ + "/absent.jsonl", "text"), ToolError);
}

}  // namespace
}  // namespace gptqtool
