// The matrix-product kernels against a double-precision reference, on every shape class the
// blocking has a separate path for (row and column tails, transposed A, k = 0, accumulation).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels.h"

using namespace perfsage::kernels;

TEST(Kernels, EveryAvailableKernelMatchesADoubleReference) {
  // Each kernel is exercised here directly, so the one the machine does not dispatch to is tested too.
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2Fma}) {
    if (!isa_available(isa)) continue;
    for (int m : {1, 3, 4, 5, 6, 7, 9, 13, 33, 97, 200})
      for (int n : {1, 7, 8, 15, 16, 17, 24, 40, 130})
        for (int k : {0, 1, 5, 64, 130})
          for (bool trans : {false, true})
            for (bool accumulate : {false, true}) {
              SCOPED_TRACE(std::string(to_string(isa)) + " m=" + std::to_string(m) + " n=" + std::to_string(n) +
                           " k=" + std::to_string(k) + (trans ? " trans" : "") + (accumulate ? " acc" : ""));
              const int lda = (trans ? m : k) + 3, ldb = n + 2, ldc = n + 1;  // padded rows
              std::vector<float> a(static_cast<size_t>((trans ? k : m) * lda + 1)), b(static_cast<size_t>(k * ldb + 1));
              std::vector<float> c(static_cast<size_t>(m * ldc));
              for (auto& x : a) x = value(rng);
              for (auto& x : b) x = value(rng);
              for (auto& x : c) x = value(rng);
              std::vector<float> expected = c;
              const std::vector<float> start = c;
              for (int i = 0; i < m; ++i)
                for (int j = 0; j < n; ++j) {
                  double s = accumulate ? c[i * ldc + j] : 0.0;
                  for (int p = 0; p < k; ++p) s += double(trans ? a[p * lda + i] : a[i * lda + p]) * b[p * ldb + j];
                  expected[i * ldc + j] = static_cast<float>(s);
                }
              sgemm_with(isa, trans, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, accumulate);
              for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], expected[i], 1e-5 * (1 + k)) << "element " << i;
              // Each row alone gives exactly that row of the whole product: however the rows are
              // blocked, every element adds over p in the same order (prediction relies on it: a
              // graph predicted alone or in a batch gets the same values).
              for (int i = 0; i < m; ++i) {
                std::vector<float> row(start.begin() + i * ldc, start.begin() + i * ldc + n);
                sgemm_with(isa, trans, 1, n, k, a.data() + (trans ? i : i * lda), lda, b.data(), ldb, row.data(), n,
                           accumulate);
                for (int j = 0; j < n; ++j) ASSERT_EQ(row[j], c[i * ldc + j]) << "row " << i << " column " << j;
              }
            }
  }
}
