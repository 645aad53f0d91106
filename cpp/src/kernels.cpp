#include "kernels.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PERFSAGE_HAVE_AVX2_KERNEL 1
#include <immintrin.h>
#endif

namespace perfsage::kernels {
namespace {

inline float a_at(const float* a, int64_t lda, bool trans_a, int64_t i, int64_t p) {
  return trans_a ? a[p * lda + i] : a[i * lda + p];
}

void sgemm_generic(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    float* crow = c + i * ldc;
    if (!accumulate) std::memset(crow, 0, static_cast<size_t>(n) * sizeof(float));
    for (int64_t p = 0; p < k; ++p) {
      const float av = a_at(a, lda, trans_a, i, p);
      const float* brow = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
    }
  }
}

#ifdef PERFSAGE_HAVE_AVX2_KERNEL

// Four rows of C at a time, 16 columns (two 8-float registers) per block: eight accumulators
// stay in registers across the whole k loop, each step loading two B vectors and broadcasting
// four A values into eight FMAs.
__attribute__((target("avx2,fma"))) void sgemm_avx2(bool trans_a, int64_t m, int64_t n, int64_t k,
                                                     const float* a, int64_t lda, const float* b,
                                                     int64_t ldb, float* c, int64_t ldc,
                                                     bool accumulate) {
  const int64_t a_row = trans_a ? 1 : lda;  // step between consecutive rows i of op(A)
  const int64_t a_col = trans_a ? lda : 1;  // step between consecutive columns p of op(A)
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const float* a0 = a + i * a_row;
    float* c0 = c + i * ldc;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      __m256 acc[4][2];
      for (int r = 0; r < 4; ++r)
        for (int h = 0; h < 2; ++h)
          acc[r][h] = accumulate ? _mm256_loadu_ps(c0 + r * ldc + j + 8 * h) : _mm256_setzero_ps();
      for (int64_t p = 0; p < k; ++p) {
        const float* brow = b + p * ldb + j;
        const __m256 b0 = _mm256_loadu_ps(brow), b1 = _mm256_loadu_ps(brow + 8);
        const float* ap = a0 + p * a_col;
        for (int r = 0; r < 4; ++r) {
          const __m256 av = _mm256_broadcast_ss(ap + r * a_row);
          acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
      }
      for (int r = 0; r < 4; ++r)
        for (int h = 0; h < 2; ++h) _mm256_storeu_ps(c0 + r * ldc + j + 8 * h, acc[r][h]);
    }
    for (; j + 8 <= n; j += 8) {
      __m256 acc[4];
      for (int r = 0; r < 4; ++r) acc[r] = accumulate ? _mm256_loadu_ps(c0 + r * ldc + j) : _mm256_setzero_ps();
      for (int64_t p = 0; p < k; ++p) {
        const __m256 bv = _mm256_loadu_ps(b + p * ldb + j);
        const float* ap = a0 + p * a_col;
        for (int r = 0; r < 4; ++r) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + r * a_row), bv, acc[r]);
      }
      for (int r = 0; r < 4; ++r) _mm256_storeu_ps(c0 + r * ldc + j, acc[r]);
    }
    for (; j < n; ++j)
      for (int r = 0; r < 4; ++r) {
        float s = accumulate ? c0[r * ldc + j] : 0.0f;
        for (int64_t p = 0; p < k; ++p) s += a0[r * a_row + p * a_col] * b[p * ldb + j];
        c0[r * ldc + j] = s;
      }
  }
  for (; i < m; ++i) {
    const float* a0 = a + i * a_row;
    float* crow = c + i * ldc;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      __m256 acc = accumulate ? _mm256_loadu_ps(crow + j) : _mm256_setzero_ps();
      for (int64_t p = 0; p < k; ++p)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + p * a_col), _mm256_loadu_ps(b + p * ldb + j), acc);
      _mm256_storeu_ps(crow + j, acc);
    }
    for (; j < n; ++j) {
      float s = accumulate ? crow[j] : 0.0f;
      for (int64_t p = 0; p < k; ++p) s += a0[p * a_col] * b[p * ldb + j];
      crow[j] = s;
    }
  }
}

#endif

Isa detect() {
  const char* forced = std::getenv("PERFSAGE_KERNELS");
  if (forced && std::string(forced) == "generic") return Isa::kGeneric;
  return isa_available(Isa::kAvx2Fma) ? Isa::kAvx2Fma : Isa::kGeneric;
}

}  // namespace

bool isa_available(Isa isa) {
  if (isa == Isa::kGeneric) return true;
#ifdef PERFSAGE_HAVE_AVX2_KERNEL
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

Isa active_isa() {
  static const Isa isa = detect();
  return isa;
}

const char* to_string(Isa isa) { return isa == Isa::kAvx2Fma ? "avx2+fma" : "generic"; }

void sgemm_with(Isa isa, bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
#ifdef PERFSAGE_HAVE_AVX2_KERNEL
  if (isa == Isa::kAvx2Fma) {
    if (!isa_available(isa)) throw std::runtime_error("sgemm: this CPU has no AVX2+FMA");
    sgemm_avx2(trans_a, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
    return;
  }
#endif
  if (isa != Isa::kGeneric) throw std::runtime_error("sgemm: kernel not built for this platform");
  sgemm_generic(trans_a, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

void sgemm(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  sgemm_with(active_isa(), trans_a, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

}  // namespace perfsage::kernels
