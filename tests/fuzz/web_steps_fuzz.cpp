// Fuzz target for what an http probe's steps read from a web server: Set-Cookie headers, JSON
// bodies by pointer, and captured values substituted into the next request. Whatever the bytes,
// nothing crashes, the jar stays bounded and a Cookie header never carries a line break.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/steps.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dozor::probes::http;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CookieJar jar;
  std::size_t at = 0;
  for (int lines = 0; at <= text.size() && lines < 200; ++lines) {
    const auto nl = text.find('\n', at);
    jar.take(text.substr(at, nl == std::string_view::npos ? text.size() - at : nl - at));
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  if (jar.header().find('\n') != std::string::npos) std::abort();
  for (const char* pointer : {"/value/0/Ref_Key", "/a", "/"}) (void)json_value(text, pointer);
  std::string out, missing;
  if (substitute(std::string(text), {{"x", "1"}}, out, missing) &&
      out.find("${x}") != std::string::npos)
    std::abort();
  return 0;
}
