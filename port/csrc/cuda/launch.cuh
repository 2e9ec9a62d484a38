// Launch sizes shared by the CUDA kernels: grid-stride loops over `total` elements.
#pragma once

#include <algorithm>
#include <cstdint>

namespace psanet {

constexpr int kThreads = 256;

inline int blocks_for(int64_t total) {
  return static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65535));
}

}  // namespace psanet
