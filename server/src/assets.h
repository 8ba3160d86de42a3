#pragma once

// The dispatcher board's static files, compiled into the collector (server/board/).
#include <string_view>

namespace dozor::server {

struct Asset {
  std::string_view url;  // "/" for index.html, else /board/<file>
  std::string_view content_type;
  std::string_view body;
  std::string_view etag;  // quoted, from the file's SHA-256
};

/// The file served at `url`, or nullptr.
const Asset* find_asset(std::string_view url);

}  // namespace dozor::server
