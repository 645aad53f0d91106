#include "utf8.h"

#include <cstddef>
#include <cstdint>

namespace perfsage {
namespace {

constexpr const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Well-formed sequences, Unicode table 3-7: a lead byte fixes the number of continuation bytes
// and the range of the first one (which excludes overlong forms, surrogates and values past
// U+10FFFF); later continuation bytes are 80..BF.
struct Lead {
  int continuation = -1;  // -1: not a lead byte
  uint8_t first_lo = 0x80, first_hi = 0xBF;
};

Lead lead_of(uint8_t b) {
  if (b >= 0xC2 && b <= 0xDF) return {1};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {2};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {};
}

}  // namespace

std::string utf8_sanitize(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    const Lead lead = lead_of(b);
    // Length of the well-formed prefix starting at i: a broken sequence is replaced as a whole up
    // to the first byte that cannot continue it, and that byte starts afresh.
    size_t length = 1;
    for (int k = 1; lead.continuation > 0 && k <= lead.continuation; ++k) {
      if (i + k >= bytes.size()) break;
      const auto c = static_cast<uint8_t>(bytes[i + k]);
      const uint8_t lo = k == 1 ? lead.first_lo : 0x80, hi = k == 1 ? lead.first_hi : 0xBF;
      if (c < lo || c > hi) break;
      ++length;
    }
    if (lead.continuation > 0 && length == static_cast<size_t>(lead.continuation) + 1)
      out.append(bytes.data() + i, length);
    else
      out += kReplacement;
    i += length;
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace perfsage
