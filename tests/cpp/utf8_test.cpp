// utf8_sanitize, which every string from a model file passes through before it reaches the IR or
// a message: ill-formed input gives one U+FFFD per maximal subpart, as Python's "replace" does.
#include <gtest/gtest.h>

#include <string>

#include "utf8.h"

namespace perfsage {
namespace {

const std::string R = "\xEF\xBF\xBD";  // U+FFFD

TEST(Utf8Sanitize, KeepsWellFormedTextExactly) {
  // Names in real models are mostly ASCII but may be any language: nothing valid may change.
  for (const std::string text :
       {std::string(), std::string("conv2d/kernel"), std::string("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E"),
        std::string("\xED\x9F\xBF"), std::string("\xEE\x80\x80"), std::string("\xF4\x8F\xBF\xBF"),
        std::string("a\0b", 3), std::string("\xC2\x80\xDF\xBF\xE0\xA0\x80\xF0\x90\x80\x80")}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(utf8_sanitize(text), text);
  }
}

TEST(Utf8Sanitize, ReplacesStrayAndInvalidBytes) {
  // The byte that hid a file name behind UnicodeDecodeError (issue 12), and bytes never valid.
  EXPECT_EQ(utf8_sanitize("a\xB7" "b"), "a" + R + "b");
  EXPECT_EQ(utf8_sanitize("\x80\xBF"), R + R);
  EXPECT_EQ(utf8_sanitize("\xF5\xFE\xFF"), R + R + R);
}

TEST(Utf8Sanitize, RejectsOverlongEncodings) {
  // An overlong form can smuggle '/' or NUL past a check on the decoded text.
  EXPECT_EQ(utf8_sanitize("\xC0\x80"), R + R);
  EXPECT_EQ(utf8_sanitize("\xC1\xBF"), R + R);
  EXPECT_EQ(utf8_sanitize("\xE0\x80\xAF"), R + R + R);
  EXPECT_EQ(utf8_sanitize("\xE0\x9F\xBF"), R + R + R);
  EXPECT_EQ(utf8_sanitize("\xF0\x80\x80\x80"), R + R + R + R);
  EXPECT_EQ(utf8_sanitize("\xF0\x8F\xBF\xBF"), R + R + R + R);
}

TEST(Utf8Sanitize, RejectsSurrogatesAndCodePointsPastUnicode) {
  // UTF-16 surrogates and values over U+10FFFF are not characters; Python refuses to decode them.
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), R + R + R);
  EXPECT_EQ(utf8_sanitize("\xED\xBF\xBF"), R + R + R);
  EXPECT_EQ(utf8_sanitize("\xF4\x90\x80\x80"), R + R + R + R);
}

TEST(Utf8Sanitize, ReplacesATruncatedSequenceOnceAndKeepsWhatFollows) {
  // A name cut in the middle of a character loses that character only, not the next one.
  EXPECT_EQ(utf8_sanitize("\xE2\x82"), R);
  EXPECT_EQ(utf8_sanitize("\xE2\x82" "A"), R + "A");
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98"), R);
  EXPECT_EQ(utf8_sanitize("x\xF0\x9F\x98\xC3\xA9"), "x" + R + "\xC3\xA9");
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98\x80\x80"), "\xF0\x9F\x98\x80" + R);
}

}  // namespace
}  // namespace perfsage
