// CPU traversal of the mask elements that feed one block of the attention buffer, in contiguous runs.
#pragma once

#include <algorithm>
#include <cstdint>

#include "psa_geometry.h"

namespace psanet {

// Targets in rows [y0, y1) and the band of source rows [a0, a1) that can link to them.
struct Block {
  int64_t y0, y1, a0, a1;
};

inline Block make_block(const Geometry& g, int64_t y0, int64_t y1) {
  return Block{y0, y1, std::max<int64_t>(0, y0 - g.reach_h()), std::min(g.height, y1 + g.reach_h())};
}

// Calls fn(mask_offset, scratch_offset, scratch_stride, count) for every run of `count` mask
// elements of one sample (contiguous from mask_offset) that feed entries of `block`. The scratch is
// the block of the buffer, row = source - a0*W, column = target - y0*W, with row stride ld;
// run element i sits at scratch_offset + i * scratch_stride.
template <typename F>
void for_each_run(const Geometry& g, const Block& block, int64_t ld, const F& fn) {
  const int64_t w = g.width;
  const int64_t hw = g.positions();
  const int64_t src0 = block.a0 * w;
  const int64_t tgt0 = block.y0 * w;
  if (g.compact) {
    if (g.distribute) {  // buffer[q, p] = mask[p, q]
      for (int64_t p = tgt0; p < block.y1 * w; ++p) fn(p * hw + src0, p - tgt0, ld, (block.a1 - block.a0) * w);
    } else {  // buffer[q, p] = mask[q, p]
      for (int64_t q = src0; q < block.a1 * w; ++q) fn(q * hw + tgt0, (q - src0) * ld, 1, (block.y1 - block.y0) * w);
    }
    return;
  }
  // r: the position the mask is read at (target for COLLECT, source for DISTRIBUTE).
  const int64_t r_begin = g.distribute ? block.a0 : block.y0;
  const int64_t r_end = g.distribute ? block.a1 : block.y1;
  const int64_t o_begin = g.distribute ? block.y0 : block.a0;
  const int64_t o_end = g.distribute ? block.y1 : block.a1;
  for (int64_t channel = 0; channel < g.channels(); ++channel) {
    const int64_t dy = channel / g.mask_w - g.half_h();
    const int64_t dx = channel % g.mask_w - g.half_w();
    const int64_t x_begin = std::max<int64_t>(0, -dx);
    const int64_t x_end = std::min(w, w - dx);
    if (x_begin >= x_end) continue;
    for (int64_t ry = std::max(r_begin, o_begin - dy); ry < std::min(r_end, o_end - dy); ++ry) {
      const int64_t r = ry * w + x_begin;
      const int64_t other = r + dy * w + dx;
      const int64_t source = g.distribute ? r : other;
      const int64_t target = g.distribute ? other : r;
      fn(channel * hw + r, (source - src0) * ld + (target - tgt0), ld + 1, x_end - x_begin);
    }
  }
}

}  // namespace psanet
