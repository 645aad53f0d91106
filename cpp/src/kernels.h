// The matrix product the network spends its time in, with a runtime-dispatched AVX2+FMA kernel.
// Distributed builds target baseline x86-64 (no -march=native), where Eigen's products use SSE2
// only; this kernel is compiled for AVX2+FMA with a function attribute and chosen at run time when
// the CPU has those instructions. Only our own code is compiled for AVX2 (no shared template
// instances), so nothing built for AVX2 can leak into the baseline code path.
#pragma once

#include <cstdint>

namespace perfsage::kernels {

enum class Isa { kGeneric, kAvx2Fma };

// The kernel the dispatcher uses: AVX2+FMA when the CPU has it, unless PERFSAGE_KERNELS=generic.
Isa active_isa();
const char* to_string(Isa isa);
bool isa_available(Isa isa);

// C (+)= op(A) B, all row-major with leading dimensions (row strides) lda, ldb, ldc.
// op(A) is A [m, k], or with trans_a the transpose of A stored as [k, m]. B is [k, n], C [m, n].
// accumulate: add to C; otherwise overwrite it.
void sgemm(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);
// The same with a chosen kernel (for tests and benchmarks); the ISA must be available.
void sgemm_with(Isa isa, bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);

}  // namespace perfsage::kernels
