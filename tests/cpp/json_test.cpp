// The JSON parser specs and checkpoint headers are read with: values, escapes, malformed text.
#include <gtest/gtest.h>

#include <string>

#include "perfsage/error.h"
#include "perfsage/json.h"

namespace perfsage {
namespace {

TEST(Json, ParsesValuesAndEscapes) {
  // The spec reader depends on these cases; anything else would be silently misread.
  const JsonValue v = parse_json(R"({"a": [1, -2.5e1, true, null], "b": "x\"\u00e9\n"})", "t");
  ASSERT_EQ(v.kind, JsonValue::Kind::kObject);
  EXPECT_EQ(v.find("a")->items[1].number, -25.0);
  EXPECT_TRUE(v.find("a")->items[2].boolean);
  EXPECT_EQ(v.find("b")->text, "x\"\xc3\xa9\n");
  EXPECT_EQ(v.find("zz"), nullptr);
}

TEST(Json, RejectsMalformedTextWithItsOffset) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"open", "tru", "[1] 2", "{\"a\": -}"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_json(bad, "t"), Error);
  }
  try {
    parse_json("[1, 2", "spec");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spec: invalid JSON at byte 5"), std::string::npos) << e.what();
  }
  std::string deep(200, '[');
  EXPECT_THROW(parse_json(deep, "t"), Error);  // bounded recursion, not a stack overflow
}

TEST(Json, DecodesSurrogatePairsAndKeepsUtf8Text) {
  // Python's json.dumps escapes every non-ASCII character, an emoji as a surrogate pair: layer
  // names must come out as the UTF-8 the user wrote, not as encoded surrogates.
  EXPECT_EQ(parse_json(R"("\ud83d\ude00 \u00e9")", "t").text, "\xF0\x9F\x98\x80 \xC3\xA9");
  EXPECT_EQ(parse_json("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"", "t").text, "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(Json, RejectsStringsThatAreNotUtf8) {
  // JSON text is UTF-8; anything else would reach tensor names and Python as undecodable bytes.
  for (const char* bad : {R"("\ud83d")", R"("\ude00")", R"("\ud83dx")", R"("\ud83d\u0041")", R"("\u12G4")",
                          "\"a\xB7\"", "\"\xC0\x80\"", "\"\xED\xA0\x80\""}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_json(bad, "t"), Error);
  }
  try {
    parse_json("[1, \"ok\", \"a\xB7\"]", "spec");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spec: invalid JSON at byte 10: string is not valid UTF-8"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace perfsage
