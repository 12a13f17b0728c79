// io/token_text: how `inspect` shows a store's tokens (byte pieces decoded, bytes printed safely).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io/token_text.hpp"

namespace universae {
namespace {

TEST(TokenText, BytePiecesDecodeToTheirByteOtherPiecesStayAsTheyAre) {
  const std::vector<std::string> vocab = {"<unk>", "<0x0A>", "<0xc3>", "<0xZZ>", "<0x0>", " the", "<0x41>x"};
  EXPECT_EQ(io::token_piece(vocab, 0), "<unk>");
  EXPECT_EQ(io::token_piece(vocab, 1), "\n");
  EXPECT_EQ(io::token_piece(vocab, 2), "\xC3");  // lower-case hex digits too
  EXPECT_EQ(io::token_piece(vocab, 3), "<0xZZ>");
  EXPECT_EQ(io::token_piece(vocab, 4), "<0x0>");
  EXPECT_EQ(io::token_piece(vocab, 5), " the");
  EXPECT_EQ(io::token_piece(vocab, 6), "<0x41>x");
  EXPECT_EQ(io::token_piece(vocab, -1), "");
  EXPECT_EQ(io::token_piece(vocab, 7), "");
}

TEST(TokenText, QuotedTextEscapesControlBytesAndInvalidUtf8) {
  EXPECT_EQ(io::quoted_text("a \"b\" \\ c"), R"("a \"b\" \\ c")");
  EXPECT_EQ(io::quoted_text("\n\t\r\x01\x7F"), R"("\n\t\r\x01\x7F")");
  EXPECT_EQ(io::quoted_text("caf\xC3\xA9 \xE2\x96\x81 \xF0\x9F\xA6\x99"), "\"caf\xC3\xA9 \xE2\x96\x81 \xF0\x9F\xA6\x99\"");
  EXPECT_EQ(io::quoted_text("\xC3"), R"("\xC3")");                  // a sequence cut short
  EXPECT_EQ(io::quoted_text("\xFF\xC3("), R"("\xFF\xC3(")");         // not a lead byte; a lead without its continuation
  EXPECT_EQ(io::quoted_text("\xC0\xAF"), R"("\xC0\xAF")");          // overlong '/'
  EXPECT_EQ(io::quoted_text("\xED\xA0\x80"), R"("\xED\xA0\x80")");  // a surrogate
  EXPECT_EQ(io::quoted_text("\xF4\x90\x80\x80"), R"("\xF4\x90\x80\x80")");  // past U+10FFFF
  EXPECT_EQ(io::quoted_text(std::string("a\0b", 3)), R"("a\x00b")");
}

}  // namespace
}  // namespace universae
