// slog(v) = sign(v) * log1p(|v|), the squashing every feature goes through (see sage.h).
#pragma once

#include <array>
#include <cmath>

namespace perfsage {

template <typename S>
inline S slog(S v) {
  return v >= 0 ? std::log1p(v) : -std::log1p(-v);
}

// slog in float. Most node features are small whole numbers (strides, ranks, flags, kernel sizes),
// so those come from a table of log1pf's own results: identical values, without a libm call per
// feature, which is a large part of a small graph's prediction.
inline float slog_float(float v) {
  constexpr int kTable = 256;
  static const auto table = [] {
    std::array<float, kTable> t{};
    for (int i = 0; i < kTable; ++i) t[i] = std::log1p(static_cast<float>(i));
    return t;
  }();
  const float a = std::abs(v);
  const int whole = static_cast<int>(a);
  const float mag = (a < kTable && static_cast<float>(whole) == a) ? table[whole] : std::log1p(a);
  return v < 0 ? -mag : mag;
}

}  // namespace perfsage
