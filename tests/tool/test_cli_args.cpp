// The command line's size values (--max-shard-size), parsed as transformers
// writes them, and refused clearly otherwise.
#include <gtest/gtest.h>

#include <string>

#include "cli/cli_args.h"
#include "common/tool_error.h"

namespace gptqtool {
namespace {

TEST(ByteSize, UnitsAsTransformersWritesThem) {
  EXPECT_EQ(parse_byte_size("4GB", "--s"), 4000000000ull);
  EXPECT_EQ(parse_byte_size("500MB", "--s"), 500000000ull);
  EXPECT_EQ(parse_byte_size("10kb", "--s"), 10000ull);
  EXPECT_EQ(parse_byte_size("2GiB", "--s"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("3MiB", "--s"), 3ull << 20);
  EXPECT_EQ(parse_byte_size("1KiB", "--s"), 1024ull);
  EXPECT_EQ(parse_byte_size("1TB", "--s"), 1000000000000ull);
  EXPECT_EQ(parse_byte_size("1234", "--s"), 1234ull);
  EXPECT_EQ(parse_byte_size("77B", "--s"), 77ull);
}

TEST(ByteSize, AnythingElseIsRefusedByName) {
  for (const char *bad : {"", "0", "0GB", "GB", "4 GB", "-1", "1.5GB", "4XB", "4GBs",
                          "99999999999999999999", "20000000TiB"}) {
    try {
      parse_byte_size(bad, "--max-shard-size");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ToolError &e) {
      EXPECT_NE(std::string(e.what()).find("--max-shard-size needs a size"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace gptqtool
