// download_cifar10 with the address and checksum as parameters, so that the transfer can be
// tested against a local server (private header).
#pragma once

#include <iosfwd>
#include <string>

namespace kestrel::detail {

// What download_cifar10 does, for `url` and `md5` instead of the official ones.
void download_cifar10_from(const std::string& url, const std::string& md5, const std::string& dir,
                           std::ostream& log);

}  // namespace kestrel::detail
