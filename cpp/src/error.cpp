#include "perfsage/error.h"

#include "utf8.h"

namespace perfsage {

Error::Error(const std::string& message) : std::invalid_argument(utf8_sanitize(message)) {}

Error::Error(const char* message) : Error(std::string(message)) {}

void fail(const std::string& source, const std::string& message) {
  throw Error(source + ": " + message);
}

}  // namespace perfsage
