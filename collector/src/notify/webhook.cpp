// Generic webhook: one JSON POST per ticket event.

#include "notifiers.h"
#include "transport.h"

namespace dozor::collector::notify {
namespace {

class Webhook final : public Notifier {
 public:
  explicit Webhook(const NotifierConfig& c)
      : Notifier(c), post_(http_url(c.url), c.ca_file, c.timeout) {}

  asio::awaitable<void> deliver(const Notification& n) override {
    const nlohmann::json body = {
        {"event", n.event}, {"event_id", n.id}, {"at", n.at}, {"ticket", n.ticket}};
    // The receiver drops a retry of an event it already has (our 2xx may have been lost).
    auto headers = config().headers;
    headers["Idempotency-Key"] = std::to_string(n.id);
    co_await post_(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), headers);
  }

 private:
  HttpPost post_;
};

}  // namespace

std::unique_ptr<Notifier> make_webhook(const NotifierConfig& config) {
  return std::make_unique<Webhook>(config);
}

}  // namespace dozor::collector::notify
