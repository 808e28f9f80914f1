#include "kestrel/core/layout.h"

#include "kestrel/core/error.h"

namespace kestrel {

const char* layout_name(Layout l) noexcept { return l == Layout::kNHWC ? "nhwc" : "nchw"; }

Layout parse_layout(const std::string& name) {
  if (name == "nchw" || name == "NCHW") return Layout::kNCHW;
  if (name == "nhwc" || name == "NHWC") return Layout::kNHWC;
  KESTREL_FAIL("unknown layout '", name, "' (known: nchw, nhwc)");
}

}  // namespace kestrel
