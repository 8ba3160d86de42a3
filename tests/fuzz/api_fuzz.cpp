// Fuzz target for the collector's ticket API: what an HTTP client sends as method, target
// (path and query) and body. Input: "METHOD TARGET\n" then the body. Every request is answered
// with a JSON body and a 2xx or 4xx status: never a crash, never a 5xx from bad input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "../../server/src/http.h"
#include "dozor/collector/desk.h"
#include "dozor/collector/schema.h"

namespace {

using namespace dozor;

constexpr double kNow = 1795435200;

struct World {
  collector::Metrics metrics;
  std::unique_ptr<collector::sql::Database> db = collector::sql::open({"sqlite::memory:", ""});
  int schema = collector::migrate(*db);  // what Store does before the Desk opens on it
  collector::Desk desk{collector::DeskConfig{}, metrics, *db};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto line_end = input.find('\n');
  const std::string_view line = input.substr(0, line_end);
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return 0;
  server::Request req;
  req.method_string(line.substr(0, space));
  req.target(line.substr(space + 1));
  req.set(server::http::field::authorization, "Bearer 0123456789abcdef0123");
  if (line_end != std::string_view::npos) req.body() = std::string(input.substr(line_end + 1));

  auto res = server::handle_desk_api(world.desk, "0123456789abcdef0123", req, kNow);
  if (!res) return 0;  // not an API path
  const unsigned status = res->result_int();
  if (status < 200 || status >= 500) std::abort();
  if (nlohmann::json::parse(res->body(), nullptr, false).is_discarded()) std::abort();
  return 0;
}
