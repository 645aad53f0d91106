// Text from a model file is untrusted bytes; everything the core keeps or quotes must be UTF-8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace perfsage {

// `bytes` with every ill-formed UTF-8 sequence replaced by U+FFFD, one per maximal subpart (the
// Unicode recommendation, which Python's `bytes.decode("utf-8", "replace")` also follows), so a name
// reaches Python, a message or a log the same way whichever of them decodes it. Well-formed text,
// NUL bytes included, comes back unchanged. Overlong forms, surrogates (U+D800..U+DFFF) and values
// past U+10FFFF are ill-formed.
std::string utf8_sanitize(std::string_view bytes);

// Appends code point `cp` (at most U+10FFFF, not a surrogate) as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace perfsage
