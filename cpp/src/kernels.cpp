#include "kernels.h"

#include <algorithm>
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

template <bool Masked>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 load_avx2(const float* x, __m256i mask) {
  if constexpr (Masked)
    return _mm256_maskload_ps(x, mask);
  else
    return _mm256_loadu_ps(x);
}

// Register blocks of R rows of C by V vectors of 8 columns: R*V accumulators stay in registers
// across the whole k loop, each step loading V vectors of B and broadcasting R values of A into R*V
// FMAs. Every element of C is accumulated over p in increasing order with one FMA per step, in any
// block shape, so the blocking never changes a result. With a mask (V = 1), only the lanes it sets
// are read from B and C and written to C: the last columns when n is not a multiple of 8.
template <int R, int V, bool Masked = false>
__attribute__((target("avx2,fma"), always_inline)) inline void block_avx2(
    int64_t k, const float* a, int64_t a_row, int64_t a_col, const float* b, int64_t ldb, float* c,
    int64_t ldc, bool accumulate, __m256i mask = __m256i()) {
  static_assert(!Masked || V == 1, "a masked block is one vector wide");
  __m256 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v)
      acc[r][v] = accumulate ? load_avx2<Masked>(c + r * ldc + 8 * v, mask) : _mm256_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const float* brow = b + p * ldb;
    __m256 bv[V];
    for (int v = 0; v < V; ++v) bv[v] = load_avx2<Masked>(brow + 8 * v, mask);
    const float* ap = a + p * a_col;
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(ap + r * a_row);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) {
      if constexpr (Masked)
        _mm256_maskstore_ps(c + r * ldc, mask, acc[r][v]);
      else
        _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
    }
}

inline __attribute__((target("avx2"))) __m256i lanes_below(int64_t width) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(width)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Rows [i0, i1) (a multiple of six of them) of one strip of 8*V columns starting at column j (of
// `width` < 8 columns, masked, when Masked), six rows at a time: twelve accumulators for V = 2,
// enough to hide the FMA latency of two pipes.
template <int V, bool Masked = false>
__attribute__((target("avx2,fma"), always_inline)) inline void strip_avx2(
    int64_t i0, int64_t i1, int64_t j, int64_t k, const float* a, int64_t a_row, int64_t a_col,
    const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate, int64_t width = 8) {
  const __m256i mask = lanes_below(width);
  for (int64_t i = i0; i + 6 <= i1; i += 6)
    block_avx2<6, V, Masked>(k, a + i * a_row, a_row, a_col, b + j, ldb, c + i * ldc + j, ldc, accumulate, mask);
}

// The last R (< 6) rows, from row i, across all n columns, 8*V at a time: a block of one or two rows
// takes four vectors of columns, so that it still has four to eight independent accumulators
// (a single row two vectors wide waits on the FMA latency at every step: a quarter of the rate).
template <int R, int V>
__attribute__((target("avx2,fma"))) void tail_rows_avx2(int64_t i, int64_t n, int64_t k, const float* a,
                                                        int64_t a_row, int64_t a_col, const float* b, int64_t ldb,
                                                        float* c, int64_t ldc, bool accumulate) {
  const float* ai = a + i * a_row;
  float* ci = c + i * ldc;
  int64_t j = 0;
  for (; j + 8 * V <= n; j += 8 * V) block_avx2<R, V>(k, ai, a_row, a_col, b + j, ldb, ci + j, ldc, accumulate);
  for (; j + 8 <= n; j += 8) block_avx2<R, 1>(k, ai, a_row, a_col, b + j, ldb, ci + j, ldc, accumulate);
  if (j < n) block_avx2<R, 1, true>(k, ai, a_row, a_col, b + j, ldb, ci + j, ldc, accumulate, lanes_below(n - j));
}

__attribute__((target("avx2,fma"))) void tail_avx2(int64_t i, int64_t rows, int64_t n, int64_t k, const float* a,
                                                   int64_t a_row, int64_t a_col, const float* b, int64_t ldb,
                                                   float* c, int64_t ldc, bool accumulate) {
  switch (rows) {
    case 1: tail_rows_avx2<1, 4>(i, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    case 2: tail_rows_avx2<2, 4>(i, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    case 3: tail_rows_avx2<3, 2>(i, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    case 4: tail_rows_avx2<4, 2>(i, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    case 5: tail_rows_avx2<5, 2>(i, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate); break;
    default: break;
  }
}

// Rows are taken in chunks of kRowChunk; within a chunk, strip by strip of 16 columns, so that one
// strip of B (k x 16 floats) stays in L1 while every row of the chunk passes over it, and the chunk
// of A stays in L2 across the strips. The chunk's last rows short of six go through tail_avx2.
constexpr int64_t kRowChunk = 96;

__attribute__((target("avx2,fma"))) void sgemm_avx2(bool trans_a, int64_t m, int64_t n, int64_t k,
                                                     const float* a, int64_t lda, const float* b,
                                                     int64_t ldb, float* c, int64_t ldc,
                                                     bool accumulate) {
  const int64_t a_row = trans_a ? 1 : lda;  // step between consecutive rows i of op(A)
  const int64_t a_col = trans_a ? lda : 1;  // step between consecutive columns p of op(A)
  for (int64_t i0 = 0; i0 < m; i0 += kRowChunk) {
    const int64_t i1 = std::min(m, i0 + kRowChunk);
    const int64_t blocks_end = i0 + (i1 - i0) / 6 * 6;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) strip_avx2<2>(i0, blocks_end, j, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
    for (; j + 8 <= n; j += 8) strip_avx2<1>(i0, blocks_end, j, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
    if (j < n)
      strip_avx2<1, true>(i0, blocks_end, j, k, a, a_row, a_col, b, ldb, c, ldc, accumulate, n - j);
    tail_avx2(blocks_end, i1 - blocks_end, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
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
