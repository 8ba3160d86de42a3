// Prometheus Alertmanager, API v2: a ticket is an alert, identified by its labels.

#include "dozor/protocol/units.h"
#include "notifiers.h"
#include "transport.h"

namespace dozor::collector::notify {
namespace {

using nlohmann::json;

// Alerts per POST when re-sending: keeps a request small whatever the number of open tickets.
constexpr std::size_t kResendBatch = 200;

HttpUrl alerts_url(const std::string& base) {
  HttpUrl u = http_url(base);
  while (u.target.ends_with("/")) u.target.pop_back();
  u.target += "/api/v2/alerts";
  return u;
}

// The labels are the alert's identity in Alertmanager: only what never changes over a ticket's
// life goes in; what does (status, summary) is an annotation.
json alert(const json& ticket, const std::optional<std::string>& ends_at) {
  json labels = json::object();
  labels["alertname"] = field(ticket, "rule").empty() ? "dozor" : field(ticket, "rule");
  labels["dozor_ticket"] = field(ticket, "id");
  for (const char* key : {"site", "agent", "probe", "class", "priority"})
    if (auto v = field(ticket, key); !v.empty()) labels[key] = v;

  json annotations = json::object();
  const auto put = [&](const char* key, std::string value) {
    if (!value.empty()) annotations[key] = std::move(value);
  };
  put("summary", field(ticket, "summary"));
  put("description", details(ticket));
  put("deadline", rfc3339_field(ticket, "deadline").value_or(""));
  put("status", field(ticket, "status"));

  json a = {{"labels", std::move(labels)}, {"annotations", std::move(annotations)}};
  if (auto starts = rfc3339_field(ticket, "opened_at")) a["startsAt"] = *starts;
  // Without endsAt Alertmanager holds the alert active for resolve_timeout after the last POST.
  if (ends_at) a["endsAt"] = *ends_at;
  return a;
}

class Alertmanager final : public Notifier {
 public:
  explicit Alertmanager(const NotifierConfig& c)
      : Notifier(c), post_(alerts_url(c.url), c.ca_file, c.timeout) {}

  asio::awaitable<void> deliver(const Notification& n) override {
    std::optional<std::string> ends_at;
    if (n.event == "resolved" || n.event == "closed") {
      // A ticket closed after its resolution ended then; one closed while open, when closed.
      ends_at = rfc3339_field(n.ticket, "resolved_at");
      if (!ends_at) ends_at = rfc3339_field(n.ticket, "closed_at");
      if (!ends_at) ends_at = format_timestamp(n.at);
    }
    json alerts = json::array();  // (g++ 12 cannot keep an initializer list across co_await)
    alerts.push_back(alert(n.ticket, ends_at));
    co_await post(alerts);
  }

  asio::awaitable<void> resend(const std::vector<json>& active) override {
    for (std::size_t from = 0; from < active.size(); from += kResendBatch) {
      json batch = json::array();
      for (std::size_t i = from; i < std::min(active.size(), from + kResendBatch); ++i)
        batch.push_back(alert(active[i], std::nullopt));
      co_await post(batch);
    }
  }

  bool resends() const override { return true; }

 private:
  asio::awaitable<void> post(const json& alerts) {
    co_await post_(alerts.dump(-1, ' ', false, json::error_handler_t::replace), config().headers);
  }

  HttpPost post_;
};

}  // namespace

std::unique_ptr<Notifier> make_alertmanager(const NotifierConfig& config) {
  return std::make_unique<Alertmanager>(config);
}

}  // namespace dozor::collector::notify
