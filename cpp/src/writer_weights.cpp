// Weight values as a spec's "weights" asks (spec.h): the distribution, magnitude pruning, per-slice
// quantisation, and the expected summary of quantised values that the spec path gives tensors too
// large to draw.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>
#include <utility>

#include "writer_graph.h"

namespace perfsage::writer {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Student-t's degrees of freedom: 3, the fewest with a finite variance (3 / (3 - 2) = 3 in its own
// units), so that it can have Glorot-uniform's like the others.
constexpr double kStudentDof = 3.0;

// The magnitude |w| of a weight in units of its distribution's own scale (uniform: the limit;
// normal: sigma; laplace: b; student_t: the standard t's): its CDF and quantile. Uniform |w| is
// uniform on [0, 1], normal |w| half-normal, laplace |w| exponential; for t with 3 degrees of
// freedom P(|t| <= x) = (2 / pi) (atan(x / sqrt 3) + sqrt(3) x / (3 + x^2)).
double magnitude_cdf(WeightDistribution d, double x) {
  if (x <= 0.0) return 0.0;
  switch (d) {
    case WeightDistribution::kUniform: return std::min(x, 1.0);
    case WeightDistribution::kNormal: return std::erf(x / std::sqrt(2.0));
    case WeightDistribution::kLaplace: return -std::expm1(-x);
    case WeightDistribution::kStudentT:
      return std::min(1.0, 2.0 / kPi * (std::atan(x / std::sqrt(kStudentDof)) +
                                        std::sqrt(kStudentDof) * x / (kStudentDof + x * x)));
  }
  return 0.0;
}

double magnitude_quantile(WeightDistribution d, double u) {
  switch (d) {
    case WeightDistribution::kUniform: return u;
    case WeightDistribution::kLaplace: return -std::log1p(-u);
    case WeightDistribution::kNormal:
    case WeightDistribution::kStudentT: break;
  }
  // The half-normal and |t| have no closed-form quantile; bisection to double precision is cheap
  // enough for the few calls a tensor makes. The bracket grows until it holds u: the largest of a
  // million t values lies near 80 of its units.
  double lo = 0.0, hi = 40.0;
  for (int i = 0; i < 64 && magnitude_cdf(d, hi) < u; ++i) hi *= 2.0;
  for (int i = 0; i < 80; ++i) {
    const double mid = 0.5 * (lo + hi);
    (magnitude_cdf(d, mid) < u ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// How many weights of `count` pruning zeroes: TF-MOT keeps round(count * (1 - sparsity)).
size_t pruned_count(size_t count, double sparsity) {
  const auto kept = static_cast<size_t>(std::llround(static_cast<double>(count) * (1.0 - sparsity)));
  return count - std::min(kept, count);
}

}  // namespace

uint64_t draws_per_weight(WeightDistribution d) {
  switch (d) {
    case WeightDistribution::kNormal: return 2;
    case WeightDistribution::kStudentT: return 3;
    default: return 1;
  }
}

void draw_weights(Rng& rng, WeightDistribution d, float limit, std::vector<float>& w) {
  switch (d) {
    case WeightDistribution::kUniform:
      for (float& x : w) x = rng.uniform(limit);
      return;
    case WeightDistribution::kNormal: {
      // Box-Muller, one value per pair of draws (the cosine branch), so that every weight takes
      // the same number of draws and skipping stays a multiply.
      const double sigma = limit / std::sqrt(3.0);
      for (float& x : w) {
        const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.unit()));
        x = static_cast<float>(sigma * radius * std::cos(2.0 * kPi * rng.unit()));
      }
      return;
    }
    case WeightDistribution::kLaplace: {
      // Inverse CDF: u in [0, 1) gives 1 - 2|u - 1/2| in (0, 1], so the log is finite.
      const double b = limit / std::sqrt(6.0);
      for (float& x : w) {
        const double v = rng.unit() - 0.5;
        x = static_cast<float>((v < 0.0 ? b : -b) * std::log(1.0 - 2.0 * std::abs(v)));
      }
      return;
    }
    case WeightDistribution::kStudentT: {
      // t = z / sqrt(v / 3) with v chi-squared of 3 degrees of freedom: z and z' are Box-Muller's
      // pair (independent normals from two draws), v = z'^2 + (-2 ln u), a chi-squared of 1 and one
      // of 2. Its variance is 3, so the scale takes Glorot-uniform's limit^2 / 3 to limit^2 / 9.
      const double scale = limit / 3.0;
      for (float& x : w) {
        const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.unit()));
        const double angle = 2.0 * kPi * rng.unit();
        const double z = radius * std::cos(angle), z2 = radius * std::sin(angle);
        const double v = z2 * z2 - 2.0 * std::log(1.0 - rng.unit());
        x = static_cast<float>(scale * z / std::sqrt(std::max(v, 1e-300) / kStudentDof));
      }
      return;
    }
  }
}

void prune_weights(std::vector<float>& w, double sparsity) {
  const size_t zeroed = pruned_count(w.size(), sparsity);
  if (zeroed == 0) return;
  // Ties in magnitude go by index, so the same values always lose the same weights.
  std::vector<uint32_t> order(w.size());
  std::iota(order.begin(), order.end(), 0u);
  const auto smaller = [&w](uint32_t a, uint32_t b) {
    const float ma = std::abs(w[a]), mb = std::abs(w[b]);
    return ma < mb || (ma == mb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(zeroed - 1), order.end(), smaller);
  for (size_t i = 0; i < zeroed; ++i) w[order[i]] = 0.0f;
}

std::vector<int16_t> quantize_weights(const std::vector<float>& w, const Slices& s, float qmax,
                                      decltype(Quantization::scale)& scales) {
  std::vector<float> absmax(s.channels, 0.0f);
  for (size_t o = 0, i = 0; o < s.outer; ++o)
    for (size_t c = 0; c < s.channels; ++c)
      for (size_t k = 0; k < s.inner; ++k, ++i) absmax[c] = std::max(absmax[c], std::abs(w[i]));
  std::vector<float> inverse(s.channels);
  scales.clear();
  scales.reserve(s.channels);
  for (size_t c = 0; c < s.channels; ++c) {
    scales.push_back(std::max(absmax[c], 1e-8f) / qmax);
    inverse[c] = 1.0f / scales[c];
  }
  std::vector<int16_t> q(w.size());
  for (size_t o = 0, i = 0; o < s.outer; ++o)
    for (size_t c = 0; c < s.channels; ++c)
      for (size_t k = 0; k < s.inner; ++k, ++i)
        q[i] = static_cast<int16_t>(std::clamp(std::nearbyint(w[i] * inverse[c]), -qmax, qmax));
  return q;
}

namespace {

// The expected fraction of zero levels and mean log2(1 + |level|) of a slice of `per_slice`
// weights of distribution `d`, pruned at magnitude `threshold` and quantised to +-qmax by the
// slice's largest magnitude. That largest magnitude M sits at the top level, and the slice's other
// values are the distribution below M; M itself varies from slice to slice (much, for few values
// per slice), so the figures average kMaxQuantiles quantiles of its distribution, G(x)^per_slice,
// some of which a high sparsity prunes with the rest of the slice.
std::pair<double, double> slice_expectation(WeightDistribution d, double threshold, double per_slice, int qmax,
                                            bool int8_levels) {
  constexpr int kMaxQuantiles = 8;
  const double others = (per_slice - 1.0) / per_slice;
  const auto level_log2 = [int8_levels](int m) { return std::log2(1.0 + (int8_levels ? m : m / 256.0)); };
  double zeros = 0.0, log2_sum = 0.0;
  for (int k = 0; k < kMaxQuantiles; ++k) {
    const double largest = magnitude_quantile(d, std::pow((k + 0.5) / kMaxQuantiles, 1.0 / per_slice));
    if (largest <= threshold) {  // pruning took the whole slice (few values per slice, high sparsity)
      zeros += 1.0;
      continue;
    }
    const double below_largest = magnitude_cdf(d, largest);
    const double step = largest / qmax;
    // The other values' CDF at the edge x of a level; pruned magnitudes (below the threshold)
    // are level 0 whatever their size.
    const auto cdf = [&](double x) {
      return below_largest > 0.0 ? std::min(magnitude_cdf(d, std::max(x, threshold)) / below_largest, 1.0) : 1.0;
    };
    double below = cdf(0.5 * step);
    double slice_log2 = 0.0;
    for (int m = 1; m < qmax; ++m) {
      const double upper = cdf((m + 0.5) * step);
      slice_log2 += (upper - below) * level_log2(m);
      below = upper;
    }
    slice_log2 += (1.0 - below) * level_log2(qmax);
    zeros += others * cdf(0.5 * step);
    log2_sum += others * slice_log2 + (1.0 - others) * level_log2(qmax);
  }
  return {zeros / kMaxQuantiles, log2_sum / kMaxQuantiles};
}

}  // namespace

ValueSummary expected_summary(const SpecWeights& weights, const Slices& s, int bits) {
  const size_t count = s.outer * s.channels * s.inner;
  ValueSummary out;
  if (count == 0) return out;
  const size_t per_slice = count / s.channels;
  // The figures depend on the distribution, sparsity, slice size and bits only: a NAS loop's
  // models repeat them across layers and candidates, so each thread keeps what it computed.
  using Key = std::tuple<int, double, size_t, int>;
  thread_local std::map<Key, std::pair<double, double>> cache;
  const Key key{static_cast<int>(weights.distribution), weights.sparsity, per_slice, bits};
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 65536) cache.clear();  // bounded whatever the mix of sparsities
    const double threshold =
        weights.sparsity > 0.0 ? magnitude_quantile(weights.distribution, weights.sparsity) : 0.0;
    it = cache.emplace(key, slice_expectation(weights.distribution, threshold, static_cast<double>(per_slice),
                                              (1 << (bits - 1)) - 1, bits <= 8)).first;
  }
  out.count = static_cast<int64_t>(count);
  out.zeros = std::llround(it->second.first * static_cast<double>(count));
  out.log2_magnitude_sum = it->second.second * static_cast<double>(count);
  return out;
}

}  // namespace perfsage::writer
