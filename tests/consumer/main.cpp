// Links against the installed libkestrel.so through find_package(Kestrel) and uses the public
// API: builds a tensor on the CPU, fills it reproducibly, and reports an error the library raised.
#include <kestrel/kestrel.h>

#include <cstdio>

int main() {
  kestrel::Context ctx(kestrel::Device::cpu());
  kestrel::Tensor t = kestrel::Tensor::empty(kestrel::Shape{2, 3}, kestrel::DType::kFloat32, ctx);
  t.fill_uniform(42, -1.f, 1.f, ctx.stream());
  const std::vector<float> v = t.to_float_vector();
  double sum = 0;
  for (float x : v) sum += x;
  std::printf("consumer: Kestrel %s, %s, %zu values, sum %.6f\n", KESTREL_VERSION_STRING,
              t.to_string().c_str(), v.size(), sum);
  try {
    (void)kestrel::parse_dtype("float128");
    std::printf("consumer: expected an error\n");
    return 1;
  } catch (const kestrel::Error& e) {
    std::printf("consumer: error reported as expected: %s\n", e.what());
  }
  std::printf("consumer: CUDA devices visible: %d\n", kestrel::cuda_device_count());
  return 0;
}
