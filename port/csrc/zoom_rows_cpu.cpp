// The row loops of zoom_rows.h in one clone per vector width (psa_clones.h).
#include "zoom_rows.h"

#include "psa_clones.h"

namespace psanet {
namespace {

template <typename T>
inline void blend_impl(const T* a, const T* b, T wa, T wb, T* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = a[i] * wa + b[i] * wb;
}

template <typename T>
inline void add_scaled_impl(T* acc, const T* v, T weight, int64_t count) {
  for (int64_t i = 0; i < count; ++i) acc[i] += v[i] * weight;
}

template <typename T>
inline void shift_scale_impl(T* v, T shift, T scale, int64_t count) {
  for (int64_t i = 0; i < count; ++i) v[i] = (v[i] - shift) * scale;
}

// Lane j holds the fold of v[j], v[j + kLanes], ...; the lanes are then folded in pairs (j with j + half).
template <typename T, typename Fold>
inline T reduce_impl(const T* v, int64_t count, T start, Fold fold) {
  T lanes[kLanes];
  for (int j = 0; j < kLanes; ++j) lanes[j] = start;
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] = fold(lanes[j], v[i + j]);
  }
  for (int j = 0; i + j < count; ++j) lanes[j] = fold(lanes[j], v[i + j]);
  for (int half = kLanes / 2; half > 0; half /= 2) {
    for (int j = 0; j < half; ++j) lanes[j] = fold(lanes[j], lanes[j + half]);
  }
  return lanes[0];
}

template <typename T>
inline T max_impl(const T* v, int64_t count) {
  return reduce_impl(v, count, v[0], [](T a, T b) { return b > a ? b : a; });
}

template <typename T>
inline T sum_impl(const T* v, int64_t count) {
  return reduce_impl(v, count, T(0), [](T a, T b) { return a + b; });
}

}  // namespace

PSA_VECTOR_CLONES float max_of(const float* v, int64_t count) { return max_impl(v, count); }
PSA_VECTOR_CLONES double max_of(const double* v, int64_t count) { return max_impl(v, count); }
PSA_VECTOR_CLONES float sum_of(const float* v, int64_t count) { return sum_impl(v, count); }
PSA_VECTOR_CLONES double sum_of(const double* v, int64_t count) { return sum_impl(v, count); }

PSA_VECTOR_CLONES void blend(const float* a, const float* b, float wa, float wb, float* out, int64_t count) {
  blend_impl(a, b, wa, wb, out, count);
}
PSA_VECTOR_CLONES void blend(const double* a, const double* b, double wa, double wb, double* out, int64_t count) {
  blend_impl(a, b, wa, wb, out, count);
}
PSA_VECTOR_CLONES void add_scaled(float* acc, const float* v, float weight, int64_t count) {
  add_scaled_impl(acc, v, weight, count);
}
PSA_VECTOR_CLONES void add_scaled(double* acc, const double* v, double weight, int64_t count) {
  add_scaled_impl(acc, v, weight, count);
}
PSA_VECTOR_CLONES void shift_scale(float* v, float shift, float scale, int64_t count) {
  shift_scale_impl(v, shift, scale, count);
}
PSA_VECTOR_CLONES void shift_scale(double* v, double shift, double scale, int64_t count) {
  shift_scale_impl(v, shift, scale, count);
}

}  // namespace psanet
