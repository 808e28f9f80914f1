// Physical order of a tensor's elements. Shapes are logical (N, C, H, W for activations);
// the layout says how they sit in memory. Tensors of rank other than 4 are always kNCHW,
// which then simply means row-major in the logical order.
#pragma once

#include <cstdint>
#include <string>

namespace kestrel {

enum class Layout : std::uint8_t { kNCHW, kNHWC };

const char* layout_name(Layout l) noexcept;  // "nchw", "nhwc"
Layout parse_layout(const std::string& name);  // raises kestrel::Error on unknown names

}  // namespace kestrel
