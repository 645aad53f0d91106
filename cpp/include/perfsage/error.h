// Errors thrown by the perfsage core.
//
// The core throws only std:: exception types and perfsage::Error. Error is what every problem with a
// user's input becomes (a malformed model, an operator the reader does not know, ...); it derives
// from std::invalid_argument so that any binding that maps invalid_argument to its "bad value"
// exception does the right thing even without knowing about perfsage::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace perfsage {

class Error : public std::invalid_argument {
 public:
  // Messages quote names and text from untrusted files: the message keeps what is valid UTF-8
  // and replaces the rest with U+FFFD, so that any binding can turn it into text.
  explicit Error(const std::string& message);
  explicit Error(const char* message);
};

// Throws Error("<source>: <message>"); the source is a file path or a caller-chosen label.
[[noreturn]] void fail(const std::string& source, const std::string& message);

}  // namespace perfsage
