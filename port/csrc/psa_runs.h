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

// Compact masks: channel = the partner position itself, so element (channel, r) is buffer[q, p] with
// (channel, r) = (q, p) for COLLECT and (p, q) for DISTRIBUTE. Runs follow the mask's contiguous axis:
// when its storage offset is q * hw + p they fill scratch rows, when it is p * hw + q scratch columns.
template <typename F>
void for_each_compact_run(const Geometry& g, const Block& block, int64_t ld, bool channels_last, const F& fn) {
  const int64_t hw = g.positions();
  const int64_t src0 = block.a0 * g.width, src1 = block.a1 * g.width;
  const int64_t tgt0 = block.y0 * g.width, tgt1 = block.y1 * g.width;
  if (g.distribute == channels_last) {
    for (int64_t q = src0; q < src1; ++q) fn(q * hw + tgt0, (q - src0) * ld, 1, tgt1 - tgt0);
  } else {
    for (int64_t p = tgt0; p < tgt1; ++p) fn(p * hw + src0, p - tgt0, ld, src1 - src0);
  }
}

// Where a block's runs land: r is the position the mask is read at (target for COLLECT, source for
// DISTRIBUTE), in rows [begin, end); its partners lie in rows [other_begin, other_end).
struct BlockOrigin {
  int64_t src0, tgt0;  // first source and first target of the block's scratch
  int64_t begin, end, other_begin, other_end;

  // Scratch offset of the entry that links mask position r to its partner `other`.
  int64_t scratch(const Geometry& g, int64_t ld, int64_t r, int64_t other) const {
    const int64_t source = g.distribute ? r : other;
    const int64_t target = g.distribute ? other : r;
    return (source - src0) * ld + (target - tgt0);
  }
};

inline BlockOrigin block_origin(const Geometry& g, const Block& block) {
  const int64_t src0 = block.a0 * g.width, tgt0 = block.y0 * g.width;
  return g.distribute ? BlockOrigin{src0, tgt0, block.a0, block.a1, block.y0, block.y1}
                      : BlockOrigin{src0, tgt0, block.y0, block.y1, block.a0, block.a1};
}

// The mask channel of offset (dy, dx).
inline int64_t offset_channel(const Geometry& g, int64_t dy, int64_t dx) {
  return (dy + g.half_h()) * g.mask_w + dx + g.half_w();
}

// Contiguous offset masks, runs along x. dy outer, row ry, dx inner: the runs of one (dy, ry) fill a
// W x W tile of the scratch and the mask rows of one dy are read in order, so both stay in cache.
template <typename F>
void for_each_offset_run(const Geometry& g, const Block& block, int64_t ld, const F& fn) {
  const int64_t w = g.width;
  const BlockOrigin o = block_origin(g, block);
  for (int64_t dy = -g.half_h(); dy <= g.half_h(); ++dy) {
    for (int64_t ry = std::max(o.begin, o.other_begin - dy); ry < std::min(o.end, o.other_end - dy); ++ry) {
      for (int64_t dx = -g.half_w(); dx <= g.half_w(); ++dx) {
        const int64_t x_begin = std::max<int64_t>(0, -dx);
        const int64_t x_end = std::min(w, w - dx);
        if (x_begin >= x_end) continue;
        const int64_t r = ry * w + x_begin;
        fn(offset_channel(g, dy, dx) * g.positions() + r, o.scratch(g, ld, r, r + dy * w + dx), ld + 1,
           x_end - x_begin);
      }
    }
  }
}

// Channels-last offset masks, runs along dx (consecutive channels) at one position r: the partner moves
// by one, so a COLLECT run fills a scratch column, a DISTRIBUTE run a scratch row.
template <typename F>
void for_each_offset_run_channels_last(const Geometry& g, const Block& block, int64_t ld, const F& fn) {
  const int64_t w = g.width;
  const BlockOrigin o = block_origin(g, block);
  for (int64_t ry = o.begin; ry < o.end; ++ry) {
    const int64_t dy_begin = std::max(-g.half_h(), o.other_begin - ry);
    const int64_t dy_end = std::min(g.half_h() + 1, o.other_end - ry);
    for (int64_t rx = 0; rx < w; ++rx) {
      const int64_t r = ry * w + rx;
      const int64_t dx_begin = std::max(-g.half_w(), -rx);
      const int64_t dx_end = std::min(g.half_w() + 1, w - rx);
      for (int64_t dy = dy_begin; dy < dy_end; ++dy) {
        fn(r * g.channels() + offset_channel(g, dy, dx_begin), o.scratch(g, ld, r, r + dy * w + dx_begin),
           g.distribute ? 1 : ld, dx_end - dx_begin);
      }
    }
  }
}

// Calls fn(mask_offset, scratch_offset, scratch_stride, count) for every run of `count` mask
// elements of one sample (contiguous from mask_offset) that feed entries of `block`. The scratch is
// the block of the buffer, row = source - a0*W, column = target - y0*W, with row stride ld;
// run element i sits at scratch_offset + i * scratch_stride. A channels-last mask (element (channel, r)
// at r * channels + channel) is walked along channels, a contiguous one along positions.
template <typename F>
void for_each_run(const Geometry& g, const Block& block, int64_t ld, bool channels_last, const F& fn) {
  if (g.compact) {
    for_each_compact_run(g, block, ld, channels_last, fn);
  } else if (channels_last) {
    for_each_offset_run_channels_last(g, block, ld, fn);
  } else {
    for_each_offset_run(g, block, ld, fn);
  }
}

}  // namespace psanet
