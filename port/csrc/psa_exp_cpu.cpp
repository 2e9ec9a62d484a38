// exp_inplace in one clone per vector width (psa_clones.h); the clamps vectorise.
#include "psa_clones.h"
#include "psa_exp.h"

namespace psanet {

PSA_VECTOR_CLONES void exp_inplace(float* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] = exp_accurate(values[i]);
}

PSA_VECTOR_CLONES void exp_inplace(double* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] = exp_accurate(values[i]);
}

}  // namespace psanet
