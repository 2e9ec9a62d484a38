// Element-wise row loops of the fused zoom + cross-entropy kernel, vectorised per CPU (zoom_rows_cpu.cpp).
#pragma once

#include <cstdint>

namespace psanet {

// out[i] = a[i] * wa + b[i] * wb: one bilinear step between two rows (or two pixels' class vectors).
void blend(const float* a, const float* b, float wa, float wb, float* out, int64_t count);
void blend(const double* a, const double* b, double wa, double wb, double* out, int64_t count);

// acc[i] += v[i] * weight: one bilinear step of the gradient, back onto a row (or a pixel).
void add_scaled(float* acc, const float* v, float weight, int64_t count);
void add_scaled(double* acc, const double* v, double weight, int64_t count);

// v[i] = (v[i] - shift) * scale.
void shift_scale(float* v, float shift, float scale, int64_t count);
void shift_scale(double* v, double shift, double scale, int64_t count);

// The largest and the sum of v[0..count), count >= 1: kLanes running values combined in a fixed order (the same
// sum on every CPU and clone), so no reduction waits on one long chain of adds.
constexpr int kLanes = 16;
float max_of(const float* v, int64_t count);
double max_of(const double* v, int64_t count);
float sum_of(const float* v, int64_t count);
double sum_of(const double* v, int64_t count);

}  // namespace psanet
