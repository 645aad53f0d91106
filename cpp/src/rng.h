// The project's random numbers: splitmix64, the same stream on every platform and compiler (the
// std distributions and std::shuffle are not), so a seed means the same models and weights anywhere.
#pragma once

#include <cstdint>
#include <vector>

namespace perfsage {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += kGamma);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Moves past `n` draws in one step, as n calls of next() would (the state only adds kGamma),
  // so that a caller that needs no values (the writer's spec path) keeps later draws in place.
  void skip(uint64_t n) { state_ += n * kGamma; }
  // Uniform in [0, 1) with 53 random bits.
  double unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform in [-limit, limit).
  float uniform(float limit) { return static_cast<float>((2.0 * unit() - 1.0) * limit); }
  // Uniform integer in [0, n); n > 0. The modulo bias is below 2^-40 for the sizes used here.
  uint64_t below(uint64_t n) { return next() % n; }
  // Fisher-Yates, with our own draws so the order is the same everywhere.
  template <typename T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

 private:
  static constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  uint64_t state_;
};

}  // namespace perfsage
