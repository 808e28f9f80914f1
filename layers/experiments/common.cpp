#include "kestrel/layers/experiments/common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "kestrel/core/device_guard_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/core/number_text_internal.h"
#include "kestrel/kernels/cpu/gather.h"
#include "kestrel/kernels/gather.h"
#include "kestrel/layers/file_io_internal.h"

namespace kestrel::experiments {
namespace {
FloatImages convert(const CifarSplit& s, std::int64_t n, int crop, int pool, const float* mean, const float* stdev) {
  FloatImages out;
  out.count = n;
  out.side = crop / pool;
  const std::int64_t side = out.side, start = (32 - crop) / 2;
  out.x.resize(static_cast<std::size_t>(n * 3 * side * side));
  out.y.resize(static_cast<std::size_t>(n));
  const float inv = 1.0f / static_cast<float>(pool * pool);
  for (std::int64_t i = 0; i < n; ++i) {
    out.y[static_cast<std::size_t>(i)] = s.labels[static_cast<std::size_t>(i)];
    const std::uint8_t* img = s.images.data() + i * kCifarImageBytes;
    for (int c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < side; ++y)
        for (std::int64_t x = 0; x < side; ++x) {
          float sum = 0.f;
          for (int dy = 0; dy < pool; ++dy)
            for (int dx = 0; dx < pool; ++dx)
              sum += img[c * 1024 + (start + y * pool + dy) * 32 + start + x * pool + dx];
          const float v = sum * inv / 255.0f;
          out.x[static_cast<std::size_t>(((i * 3 + c) * side + y) * side + x)] = (v - mean[c]) / stdev[c];
        }
  }
  return out;
}
// Correct arg-max predictions among the rows of one batch's logits that hold images
// first .. count - 1 (the rest of a last, padded batch is not counted).
std::int64_t correct_in_batch(const std::vector<float>& logits, std::int64_t batch, std::int64_t first,
                              std::int64_t count, const std::vector<std::int32_t>& labels) {
  const std::int64_t classes = static_cast<std::int64_t>(logits.size()) / batch;
  std::int64_t correct = 0;
  for (std::int64_t b = 0; b < batch && first + b < count; ++b) {
    const auto row = logits.begin() + b * classes;
    const std::int64_t pred = std::max_element(row, row + classes) - row;
    correct += pred == labels[static_cast<std::size_t>(first + b)];
  }
  return correct;
}
}  // namespace

FloatDataset to_float_dataset(const CifarDataset& data, std::int64_t n_train, std::int64_t n_test, int crop,
                              int pool) {
  KESTREL_CHECK(n_train > 0 && n_train <= data.train.count && n_test > 0 && n_test <= data.test.count,
                "asked for ", n_train, " training and ", n_test, " test images of ", data.source, ", which has ",
                data.train.count, " and ", data.test.count);
  KESTREL_CHECK(pool >= 1 && crop >= pool && crop <= 32 && crop % pool == 0, "crop ", crop, " and pool ", pool,
                ": need 1 <= pool <= crop <= 32 with crop a multiple of pool");
  // Per-channel statistics of the training images (whole 32x32 images, as usual for CIFAR).
  float mean[3], stdev[3];
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    for (std::int64_t i = 0; i < n_train; ++i)
      for (int p = 0; p < 1024; ++p) {
        const double v = data.train.images[static_cast<std::size_t>(i * kCifarImageBytes + c * 1024 + p)] / 255.0;
        s += v;
        s2 += v * v;
      }
    const double n = static_cast<double>(n_train) * 1024.0;
    mean[c] = static_cast<float>(s / n);
    stdev[c] = static_cast<float>(std::sqrt(std::max(s2 / n - (s / n) * (s / n), 1e-6)));
  }
  FloatDataset out;
  out.train = convert(data.train, n_train, crop, pool, mean, stdev);
  out.test = convert(data.test, n_test, crop, pool, mean, stdev);
  out.source = data.source;
  return out;
}

CifarDataset load_or_synthesise(const std::string& dir, std::int64_t n_train, std::int64_t n_test,
                                std::uint64_t seed) {
  if (dir.empty()) return synthetic_cifar10(n_train, n_test, seed);
  return load_cifar10(dir);
}

std::vector<float> to_host(const Tensor& t, Context& ctx) { return t.to_float_vector(ctx.stream()); }

void from_host(Tensor& t, const std::vector<float>& values, Context& ctx) {
  KESTREL_CHECK(static_cast<std::int64_t>(values.size()) == t.numel(), "from_host: ", values.size(),
                " values for ", t.to_string());
  const Tensor src = Tensor::from_vector(values, t.shape(), t.dtype(), t.layout());
  t.copy_from(src, ctx.stream());
}

void feed_batch(Executor& ex, const FloatImages& src, const std::vector<std::int32_t>& order, std::int64_t first,
                const std::string& x_name, const std::string& y_name) {
  Tensor x = ex.input(x_name), y = ex.input(y_name);
  const std::int64_t batch = y.numel(), per = src.features();
  KESTREL_CHECK(x.numel() == batch * per, "feed_batch: input '", x_name, "' ", x.to_string(), " does not hold ",
                batch, " images of ", per, " values");
  KESTREL_CHECK(!order.empty(), "feed_batch: no images to feed");
  std::vector<float> xs(static_cast<std::size_t>(batch * per));
  Tensor labels = Tensor::empty_cpu(y.shape(), DType::kInt32);
  auto* lab = labels.data_as<std::int32_t>();
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t i = order[static_cast<std::size_t>((first + b) % static_cast<std::int64_t>(order.size()))];
    std::copy_n(src.x.begin() + i * per, per, xs.begin() + b * per);
    lab[b] = src.y[static_cast<std::size_t>(i)];
  }
  Context& ctx = ex.context();
  from_host(x, xs, ctx);
  y.copy_from(labels, ctx.stream());
}

double accuracy(Executor& ex, const FloatImages& data, const std::string& x_name, const std::string& y_name,
                const std::string& logits_name) {
  const std::int64_t batch = ex.input(y_name).numel();
  std::vector<std::int32_t> order(static_cast<std::size_t>(data.count));
  for (std::int64_t i = 0; i < data.count; ++i) order[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  std::int64_t correct = 0;
  for (std::int64_t first = 0; first < data.count; first += batch) {
    feed_batch(ex, data, order, first, x_name, y_name);
    ex.run();
    const std::vector<float> logits = to_host(ex.output(logits_name), ex.context());
    correct += correct_in_batch(logits, batch, first, data.count, data.y);
  }
  return static_cast<double>(correct) / static_cast<double>(data.count);
}

DeviceImages upload_images(const FloatImages& src, DType dtype, Layout layout, Context& ctx) {
  KESTREL_CHECK(src.count > 0 && static_cast<std::int64_t>(src.x.size()) == src.count * src.features() &&
                    static_cast<std::int64_t>(src.y.size()) == src.count,
                "upload_images: ", src.count, " images of side ", src.side, " do not match ", src.x.size(),
                " values and ", src.y.size(), " labels");
  DeviceImages d;
  d.count = src.count;
  d.labels = src.y;
  d.x = Tensor::from_vector(src.x, Shape{src.count, 3, src.side, src.side}, dtype, layout).to(ctx, ctx.stream());
  d.y = device_ints(d.labels, ctx);
  return d;
}

Tensor device_ints(const std::vector<std::int32_t>& values, Context& ctx) {
  const auto n = static_cast<std::int64_t>(values.size());
  Tensor t = Tensor::empty(Shape{n}, DType::kInt32, ctx);
  // copy_from leaves the host buffer free on return, so the const_cast only satisfies wrap().
  t.copy_from(Tensor::wrap(const_cast<std::int32_t*>(values.data()), Shape{n}, DType::kInt32, Device::cpu()),
              ctx.stream());
  return t;
}

void feed_batch(Executor& ex, const DeviceImages& src, const Tensor& order, std::int64_t first,
                const std::string& x_name, const std::string& y_name) {
  Tensor x = ex.input(x_name), y = ex.input(y_name);
  const std::int64_t batch = y.numel();
  Context& ctx = ex.context();
  const Shape& xs = x.shape();
  const Shape& is = src.x.shape();
  KESTREL_CHECK(x.dtype() == src.x.dtype() && x.layout() == src.x.layout() && xs.rank() == 4 && xs[0] == batch &&
                    xs[1] == is[1] && xs[2] == is[2] && xs[3] == is[3] && y.dtype() == DType::kInt32,
                "feed_batch: input '", x_name, "' ", x.to_string(), " does not take images of ", src.x.to_string());
  KESTREL_CHECK(src.x.device() == ctx.device() && order.device() == ctx.device(), "feed_batch: images on ",
                src.x.device().to_string(), " and order on ", order.device().to_string(), " for an executor on ",
                ctx.device().to_string());
  KESTREL_CHECK(order.dtype() == DType::kInt32 && first >= 0 && first + batch <= order.numel(),
                "feed_batch: order ", order.to_string(), " has no positions ", first, "..", first + batch - 1);
  const std::int32_t* idx = order.data_as<std::int32_t>() + first;
  const std::int64_t image_bytes = static_cast<std::int64_t>(src.x.nbytes()) / src.count;
  DeviceGuard guard(ctx.device());  // launches on the context's device
  if (ctx.device().is_cpu()) {
    cpu::gather_rows(src.x.data(), src.count, image_bytes, idx, batch, x.data());
    cpu::gather_rows(src.y.data(), src.count, 4, idx, batch, y.data());
  } else {
    cuda::gather_rows(src.x.data(), src.count, image_bytes, idx, batch, x.data(), ctx.stream().handle());
    cuda::gather_rows(src.y.data(), src.count, 4, idx, batch, y.data(), ctx.stream().handle());
  }
}

double accuracy(Executor& ex, const DeviceImages& data, const std::string& x_name, const std::string& y_name,
                const std::string& logits_name) {
  const std::int64_t batch = ex.input(y_name).numel();
  const std::int64_t padded = (data.count + batch - 1) / batch * batch;
  std::vector<std::int32_t> positions(static_cast<std::size_t>(padded));
  for (std::int64_t i = 0; i < padded; ++i) positions[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % data.count);
  Context& ctx = ex.context();
  const Tensor order = device_ints(positions, ctx);
  std::int64_t correct = 0;
  for (std::int64_t first = 0; first < data.count; first += batch) {
    feed_batch(ex, data, order, first, x_name, y_name);
    ex.run();
    const std::vector<float> logits = to_host(ex.output(logits_name), ctx);
    correct += correct_in_batch(logits, batch, first, data.count, data.labels);
  }
  return static_cast<double>(correct) / static_cast<double>(data.count);
}

double l2_norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

double total_variation(const double* p, const double* q, std::int64_t n) {
  double d = 0;
  for (std::int64_t k = 0; k < n; ++k) d += std::fabs(p[k] - q[k]);
  return 0.5 * d;
}

CsvTable::CsvTable(std::vector<std::string> header) : header_(std::move(header)) {
  KESTREL_CHECK(!header_.empty(), "a CSV table needs at least one column");
}

void CsvTable::add_row(const std::vector<std::string>& cells) {
  KESTREL_CHECK(cells.size() == header_.size(), "CSV row of ", cells.size(), " cells for ", header_.size(), " columns");
  rows_.push_back(cells);
}

std::string float_text(float v) {
  if (!std::isfinite(v)) return CsvTable::cell(static_cast<double>(v));
  return detail::shortest_float_text(v);
}

std::string CsvTable::cell(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return detail::general_text(v, 8);
}

std::string CsvTable::text() const {
  auto line = [](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const std::string& c = cells[i];
      const bool quote = c.find_first_of(",\"\r\n") != std::string::npos;  // RFC 4180's rule
      std::string q;
      for (char ch : c) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      s += (i ? "," : "") + (quote ? "\"" + q + "\"" : c);
    }
    return s + "\n";
  };
  std::string s = line(header_);
  for (const auto& r : rows_) s += line(r);
  return s;
}

void CsvTable::write(const std::string& path) const {
  const std::string t = text();
  detail::write_file_atomic(reinterpret_cast<const std::uint8_t*>(t.data()), t.size(), path);
}

ReportFolder::ReportFolder(std::string dir) : dir_(std::move(dir)) { detail::make_directories(dir_); }

std::string ReportFolder::file(const std::string& name, bool present) {
  const std::string path = dir_ + "/" + name;
  if (present) {
    written_.push_back(path);
    return path;
  }
  detail::remove_file_if_present(path);
  return {};
}

void log_line(std::ostream* log, const std::string& text) {
  if (log != nullptr) *log << text << std::endl;
}

}  // namespace kestrel::experiments
