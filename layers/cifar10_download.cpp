// Fetching and unpacking cifar-10-binary.tar.gz.
#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <ostream>

#include "kestrel/config.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/cifar10_download_internal.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/tar_gz_internal.h"

#if KESTREL_HAVE_CURL
#include <curl/curl.h>
#endif

namespace kestrel {
namespace {

namespace fs = std::filesystem;

// The official archive unpacks to about 180 MB; anything far larger is not it.
constexpr std::uint64_t kMaxUnpackedBytes = std::uint64_t{1} << 30;

// Removes a path (recursively) when the scope ends, unless released.
struct RemoveOnExit {
  fs::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    try {  // remove_all's error_code form can still raise std::bad_alloc
      if (!path.empty()) fs::remove_all(path, ec);
    } catch (...) {
    }
  }
};

std::string normalized_md5(const std::string& md5) {
  std::string out;
  for (char c : md5) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool hex = out.size() == 32 && out.find_first_not_of("0123456789abcdef") == std::string::npos;
  KESTREL_CHECK(hex, "expected MD5 \"", md5, "\" is not 32 hex digits");
  return out;
}

#if KESTREL_HAVE_CURL
struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

struct Progress {
  std::ostream* log;
  int last_tenth = -1;
};

// libcurl progress callback: one line per 10%. Never lets an exception into C code.
int report_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) noexcept {
  try {
    auto* p = static_cast<Progress*>(user);
    if (total <= 0) return 0;
    const int tenth = static_cast<int>(now * 10 / total);
    if (tenth != p->last_tenth) {
      p->last_tenth = tenth;
      *p->log << "  " << tenth * 10 << "% of " << total << " bytes" << std::endl;
    }
  } catch (...) {
  }
  return 0;
}

// Creates the download's file in `dir`, exclusively (a link planted at the name is never
// followed), and sets *path to its name, which the caller removes.
std::unique_ptr<std::FILE, FileCloser> create_part_file(const std::string& dir, std::string* path) {
  int err = 0;
  const int fd = detail::create_exclusive((fs::path(dir) / "cifar-10-binary.tar.gz.part.").string(),
                                          0644, path, &err);
  KESTREL_CHECK(fd >= 0, "cannot create ", *path, ": ", detail::errno_text(err));
  std::unique_ptr<std::FILE, FileCloser> out(::fdopen(fd, "wb"));
  if (out == nullptr) {
    err = errno;
    ::close(fd);
    ::unlink(path->c_str());
    KESTREL_FAIL("cannot open ", *path, " for writing: ", detail::errno_text(err));
  }
  return out;
}

void fetch(const std::string& url, std::unique_ptr<std::FILE, FileCloser> out, const std::string& path,
           std::ostream& log) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  KESTREL_CHECK(curl != nullptr, "libcurl could not start a transfer (curl_easy_init failed)");
  char error[CURL_ERROR_SIZE] = {0};
  Progress progress{&log};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out.get());  // default write function: fwrite
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);  // HTTP >= 400 is an error, not a body to save
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);  // give up when stalled for a minute
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &report_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &progress);
  const CURLcode rc = curl_easy_perform(c);
  KESTREL_CHECK(rc == CURLE_OK, "downloading ", url, " failed: ",
                error[0] != '\0' ? error : curl_easy_strerror(rc));
  std::FILE* f = out.release();
  const bool write_failed = std::ferror(f) != 0;
  KESTREL_CHECK(std::fclose(f) == 0 && !write_failed, "writing ", path, " failed: ",
                detail::errno_text(errno));
}
#endif

}  // namespace

void unpack_and_verify_cifar10(const std::string& tar_gz_path, const std::string& expected_md5,
                               const std::string& dir) {
  const std::string want = normalized_md5(expected_md5);
  const std::string got = detail::md5_file_hex(tar_gz_path);
  KESTREL_CHECK(got == want, tar_gz_path, " has MD5 ", got, " but ", want,
                " was expected: the download is corrupt or not cifar-10-binary.tar.gz");
  detail::make_directories(dir);
  std::error_code ec;
  const fs::path final_dir = fs::path(dir) / "cifar-10-batches-bin";
  KESTREL_CHECK(!fs::exists(final_dir, ec), final_dir.string(),
                " already exists; remove it to unpack ", tar_gz_path, " again");
  // A new folder of our own (mkdtemp: never one that is there already, nor a planted link).
  std::string staging_name = (fs::path(dir) / ".cifar-10-unpack.XXXXXX").string();
  KESTREL_CHECK(::mkdtemp(staging_name.data()) != nullptr, "cannot create a staging folder ",
                staging_name, " in ", dir, ": ", detail::errno_text(errno));
  RemoveOnExit staging{staging_name};
  detail::extract_tar_gz(tar_gz_path, staging.path.string(), kMaxUnpackedBytes);
  const fs::path unpacked = staging.path / "cifar-10-batches-bin";
  KESTREL_CHECK(fs::is_directory(unpacked, ec), tar_gz_path,
                " holds no cifar-10-batches-bin folder: it is not cifar-10-binary.tar.gz");
  try {
    load_cifar10(unpacked.string());
  } catch (const Error& e) {
    KESTREL_FAIL(tar_gz_path, " unpacked, but its batches do not load: ", e.message());
  }
  fs::rename(unpacked, final_dir, ec);
  KESTREL_CHECK(!ec, "cannot move ", unpacked.string(), " to ", final_dir.string(), ": ",
                ec.message());
}

void detail::download_cifar10_from(const std::string& url, const std::string& md5,
                                   const std::string& dir, std::ostream& log) {
  try {
    load_cifar10(dir);
    log << "CIFAR-10 is already in " << dir << "; not downloading it again" << std::endl;
    return;
  } catch (const Error& e) {
    // Not there: fetch it. There but damaged: say so now rather than after the download, in
    // either place load_cifar10 looks (DIR itself first, so batches there would still be the
    // ones read after a download into DIR/cifar-10-batches-bin).
    std::error_code ec;
    for (const fs::path& there : {fs::path(dir) / "data_batch_1.bin", fs::path(dir) / "cifar-10-batches-bin"})
      KESTREL_CHECK(!fs::exists(there, ec), there.string(), " exists but CIFAR-10 in ", dir,
                    " does not load (", e.message(), "); remove it to download CIFAR-10 again");
  }
#if KESTREL_HAVE_CURL
  detail::make_directories(dir);
  RemoveOnExit archive;
  std::string part;
  std::unique_ptr<std::FILE, FileCloser> out = create_part_file(dir, &part);
  archive.path = part;
  log << "downloading " << url << " to " << part << std::endl;
  fetch(url, std::move(out), part, log);
  log << "checking MD5 and unpacking into " << dir << std::endl;
  unpack_and_verify_cifar10(archive.path.string(), md5, dir);
  log << "CIFAR-10 is ready in " << (fs::path(dir) / "cifar-10-batches-bin").string() << std::endl;
#else
  KESTREL_FAIL("Kestrel was built without libcurl: download cifar-10-binary.tar.gz yourself ",
               "(", url, ", MD5 ", md5, "), unpack it and pass --data DIR");
#endif
}

void download_cifar10(const std::string& dir, std::ostream& log) {
  detail::download_cifar10_from(kCifar10BinaryUrl, kCifar10BinaryMd5, dir, log);
}

}  // namespace kestrel
