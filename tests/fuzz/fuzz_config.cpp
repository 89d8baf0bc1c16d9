// libFuzzer target: the YAML configuration loader on arbitrary text. A bad file must
// end in config_error (which names the key and line), never in another exception, a
// crash or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)bt::config::parse(std::string{reinterpret_cast<const char*>(data), size});
  } catch (const bt::config::config_error&) {
  }
  return 0;
}
