// exp_inplace in one clone per vector width, picked at load time for the CPU (GCC/Clang function
// multiversioning). Built with -ffp-contract=off and -fno-trapping-math (setup.py): no clone fuses a
// multiply-add, so every clone and its scalar tail compute the same IEEE values; the clamps vectorise.
#include "psa_exp.h"

namespace psanet {

#define PSA_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

PSA_VECTOR_CLONES void exp_inplace(float* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] = exp_accurate(values[i]);
}

PSA_VECTOR_CLONES void exp_inplace(double* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] = exp_accurate(values[i]);
}

}  // namespace psanet
