#include "perfsage/error.h"

namespace perfsage {

void fail(const std::string& source, const std::string& message) {
  throw Error(source + ": " + message);
}

}  // namespace perfsage
