#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/collector/metrics.h"
#include "dozor/protocol/options.h"

namespace dozor::collector {

/// One ticket event on its way to one notifier: a row of the store's outbox.
struct Notification {
  std::uint64_t id = 0;   // the event's id: unique and stable across retries (idempotency key)
  std::string event;      // opened, escalated, acknowledged, resolved, reopened, closed
  double at = 0;          // when the event happened (unix seconds)
  nlohmann::json ticket;  // the ticket as GET /api/v1/tickets/{id} showed it at that moment
  int attempts = 0;       // deliveries tried so far
};

/// The durable outbox the notifiers drain (implemented by the Desk over the store). A row leaves
/// the outbox only once its notifier has delivered it.
class OutboxQueue {
 public:
  virtual ~OutboxQueue() = default;
  /// Up to `limit` notifications for `notifier` whose next attempt is due at `now`, oldest first.
  /// Delivery keeps order: nothing is returned from behind a row that is not due yet (one that
  /// failed and waits for its retry), also after a restart.
  virtual std::vector<Notification> due(const std::string& notifier, double now,
                                        std::size_t limit) = 0;
  /// Removes the row (also a row the notifier does not want: see NotifierConfig::wants).
  virtual void delivered(const std::string& notifier, std::uint64_t id) = 0;
  /// Keeps the row, counts the attempt and schedules the next one.
  virtual void failed(const std::string& notifier, std::uint64_t id, double retry_at,
                      const std::string& error) = 0;
  /// Tickets open or acknowledged now, as the API shows them (for notifiers that re-send state).
  virtual std::vector<nlohmann::json> active_tickets() = 0;
};

/// One `notifiers:` entry of collector.yaml.
struct NotifierConfig {
  std::string name;  // unique; the outbox and dozor_notifications_failed_total use it
  std::string type;  // webhook, alertmanager, smtp
  std::string url;   // webhook: http(s)://host:port/path; alertmanager: http(s)://host:port
  std::map<std::string, std::string> headers;  // webhook, alertmanager: extra HTTP headers
  std::chrono::milliseconds timeout{10'000};   // one delivery attempt
  std::chrono::milliseconds resend{60'000};    // alertmanager: re-send active tickets this often
  std::string smtp_server;                     // smtp: host:port
  std::string from;                            // smtp
  std::vector<std::string> to;                 // smtp
  std::vector<std::string> events;             // empty: every event
  std::string ca_file;                         // https: CA to verify the receiver (default system)
  // Not in collector.yaml: the first retry after a failure, doubling up to retry_max (tests
  // shorten them).
  std::chrono::milliseconds retry_base{1'000};
  std::chrono::milliseconds retry_max{300'000};

  /// Whether this notifier takes `event` (the Desk queues only those; the Dispatcher skips others).
  bool wants(std::string_view event) const;
};

/// The `notifiers:` list; errors go to `errors` as file:line: notifiers[i].key: message.
std::vector<NotifierConfig> parse_notifiers(const YAML::Node& node, const std::string& file,
                                            std::vector<ConfigError>& errors);

/// Delivers notifications to one receiver.
class Notifier {
 public:
  explicit Notifier(NotifierConfig config) : config_(std::move(config)) {}
  virtual ~Notifier() = default;
  const NotifierConfig& config() const { return config_; }

  /// Delivers `n`, or throws std::runtime_error naming why (refused, timeout, HTTP 500, SMTP 550).
  virtual boost::asio::awaitable<void> deliver(const Notification& n) = 0;
  /// Re-sends the state of the active tickets every `config().resend` (Alertmanager forgets an
  /// alert that is not re-sent); nothing by default.
  virtual boost::asio::awaitable<void> resend(const std::vector<nlohmann::json>& active);
  /// True when resend() does something (the Dispatcher then calls it every `config().resend`).
  virtual bool resends() const { return false; }

 private:
  NotifierConfig config_;
};

/// The notifier of `config.type`; throws std::runtime_error when it cannot be set up (an unusable
/// ca_file: parse_notifiers reports that already).
std::unique_ptr<Notifier> make_notifier(const NotifierConfig& config);

/// Drains the outbox on `io`, one coroutine per notifier: rows are delivered oldest first; a failed
/// row is retried with exponential backoff (1 s doubling to 5 min, with jitter), counted in
/// dozor_notifications_failed_total, and stays in the outbox, so nothing is lost across a restart.
/// Lives on the I/O thread of `io`: construct, start() and stop() it there; wake() is thread-safe.
class Dispatcher {
 public:
  using Clock = std::function<double()>;  // unix seconds
  /// `poll`: how often the outbox is read without a wake(), for rows another collector queued.
  Dispatcher(boost::asio::io_context& io, OutboxQueue& queue, Metrics& metrics,
             std::vector<std::unique_ptr<Notifier>> notifiers, Clock clock,
             std::chrono::milliseconds poll = std::chrono::seconds(1));
  ~Dispatcher();
  void start();
  /// New rows were queued: look now rather than at the next poll. Any thread.
  void wake();
  /// Stops after the attempts in flight (each bounded by its notifier's timeout); the coroutines
  /// then end and leave `io` without work. Keep the queue and metrics alive until they have.
  void stop();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace dozor::collector
