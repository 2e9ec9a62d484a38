// exp of our own for the fused CPU kernel: plain arithmetic (vectorisable, no library dispatch), so every
// thread computes the same, known-accurate values whatever the CPU and however the process warmed up.
//
// exp(x) = 2^n * e^r with n = round(x / ln 2) and r = x - n ln 2 (|r| <= ln2 / 2, ln 2 split in a high part
// exact in the type and a low part); e^r is its Taylor polynomial, whose truncation error is below
// 2^-26 relative for float (degree 7) and 2^-57 for double (degree 13): about 1-2 ulp after rounding.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace psanet {

// 1 / k! for k = 0..13, the Taylor coefficients of e^r.
constexpr double kInvFactorial[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
                                      1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600,
                                      1.0 / 6227020800.0};

template <typename T>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  using Bits = int32_t;
  static constexpr int kDegree = 7;
  static constexpr int kMantissa = 23;
  static constexpr int kBias = 127;
  static constexpr float kLow = -87.0f;  // below: 0 (exp(-87) is near FLT_MIN)
  static constexpr float kHigh = 88.0f;  // above: +inf
  static constexpr float kShifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr float kLn2Hi = 0.693145751953125f;
  static constexpr float kLn2Lo = 1.428606765330187e-06f;
};

template <>
struct ExpConstants<double> {
  using Bits = int64_t;
  static constexpr int kDegree = 13;
  static constexpr int kMantissa = 52;
  static constexpr int kBias = 1023;
  static constexpr double kLow = -708.0;
  static constexpr double kHigh = 709.0;
  static constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double kLn2Hi = 0.6931471803691238;
  static constexpr double kLn2Lo = 1.9082149292705877e-10;
};

// exp(x) for float or double; NaN stays NaN.
template <typename T>
inline T exp_accurate(T x) {
  using C = ExpConstants<T>;
  const T xc = x < C::kLow ? C::kLow : (x > C::kHigh ? C::kHigh : x);
  const T n = (xc * T(1.4426950408889634) + C::kShifter) - C::kShifter;
  const T r = (xc - n * C::kLn2Hi) - n * C::kLn2Lo;
  T p = T(kInvFactorial[C::kDegree]);
  for (int k = C::kDegree - 1; k >= 0; --k) p = p * r + T(kInvFactorial[k]);
  const typename C::Bits bits = (static_cast<typename C::Bits>(n) + C::kBias) << C::kMantissa;
  T scale;
  std::memcpy(&scale, &bits, sizeof(T));
  const T y = p * scale;
  return x < C::kLow ? T(0) : (x > C::kHigh ? std::numeric_limits<T>::infinity() : y);
}

// values[i] = exp_accurate(values[i]) for i < count, vectorised for the CPU it runs on (psa_exp_cpu.cpp).
void exp_inplace(float* values, int64_t count);
void exp_inplace(double* values, int64_t count);

}  // namespace psanet
