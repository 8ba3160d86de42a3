#include "http/http.h"

namespace dozor::probes::http {
namespace {
class Placeholder final : public Probe {
 public:
  asio::awaitable<Result> run(ProbeContext&) override {
    co_return make_result(Status::unknown, "not implemented");
  }
};
std::unique_ptr<Probe> make(const Options&) { return std::make_unique<Placeholder>(); }
}  // namespace
ProbeType probe_type() { return {"http", "", {}, &make}; }
}  // namespace dozor::probes::http
