#include "kestrel/kernels/cpu/augment.h"

#include "kestrel/core/error.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {

void augment_batch(const std::uint8_t* dataset, std::int64_t num_images,
                   const std::uint8_t* labels_in, const std::int32_t* indices, std::int64_t n,
                   void* out, DType out_dtype, Layout out_layout, std::int32_t* labels_out,
                   const AugmentParams& p) {
  using namespace augment_detail;
  check_augment(num_images, n, out_dtype, p, dataset, indices, out, labels_in, labels_out);
  for (std::int64_t b = 0; b < n; ++b)
    KESTREL_CHECK(indices[b] >= 0 && indices[b] < num_images, "augment_batch: index ", indices[b],
                  " at batch position ", b, " is outside [0, ", num_images, ")");
  const Norm norm = normalisation(p);
  const std::uint64_t offset = stream_offset(p.offset, p.offset_ptr);
  for (std::int64_t b = 0; b < n; ++b) {
    const Draw d = draw(p.seed, offset, b, p.pad, p.random_crop, p.random_flip);
    const std::uint8_t* image = dataset + indices[b] * kImageBytes;
    for (int c = 0; c < kChannels; ++c)
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x)
          element_io::store_float(out, out_dtype,
                                 element_io::offset4(out_layout, b, c, y, x, kChannels, kSide, kSide),
                                 pixel(image, c, y, x, d, p.pad, norm));
    if (labels_out) labels_out[b] = labels_in[indices[b]];
  }
}

}  // namespace kestrel::cpu
