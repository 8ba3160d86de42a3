#pragma once

// The dispatcher board's model: what an open board shows, as entities keyed "ticket:12",
// "site:acme-kyiv", "agent:a1", "probe:a1/1c-cluster", "silence:3", and the changes between
// looks, so that a board gets only what changed. Not thread-safe: the server's one thread owns it.
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dozor/collector/desk.h"
#include "dozor/collector/health.h"

namespace dozor::server {

class Board {
 public:
  /// Changes kept for boards that fall behind; one further behind gets a new snapshot.
  static constexpr std::size_t kKeptChanges = 256;
  static constexpr std::size_t kKeptBytes = 8 << 20;

  Board(collector::Health& health, collector::Desk* desk);

  /// Looks at what changed since the last call (cheap when nothing did); true when there are
  /// changes for the boards.
  bool update(double now);
  /// Everything a board shows: the queue, the sites' tiles, the silences and, with `site`,
  /// that site's agents and probes (watch(site) first), as one JSON object: `head`'s fields,
  /// `seq` (the changes it includes), `at`, `site` and `entities` {key: entity}.
  std::string snapshot(const std::string& site, const nlohmann::json& head) const;
  /// The changes after `since` for a board of `site` (empty for none) as one JSON object
  /// `{"seq", "at", "set": {key: entity}, "del": [key]}`; empty when none concern that board,
  /// nullopt when they are no longer kept.
  std::optional<std::string> changes_after(std::uint64_t since, const std::string& site) const;
  std::uint64_t seq() const { return seq_; }

  /// A board of `site` opened or closed: a site's agents and probes are kept only while watched.
  void watch(const std::string& site);
  void unwatch(const std::string& site);

 private:
  struct Entity {
    std::string scope;    // "" for every board, else the site whose page shows it
    std::string json;     // what is sent
    std::string compare;  // what counts as a change (without fields that move by themselves)
  };
  struct Change {
    std::string key, scope, json;  // json empty: deleted
  };
  struct Delta {
    std::uint64_t seq = 0;
    double at = 0;
    std::vector<Change> changes;
    std::size_t bytes = 0;
  };
  // What a site's tile is made of, for every agent (watched or not).
  struct AgentBrief {
    std::string site;
    bool up = false;
    double down_since = 0;
    std::map<std::string, protocol::Status> probes;
  };
  struct Since {
    std::string state;
    double since = 0;  // 0: already so when this collector started
  };

  void set(const std::string& key, const std::string& scope, nlohmann::json entity,
           const char* volatile_field = nullptr);
  void erase_entity(const std::string& key);
  // Erases the entities whose key starts with `prefix` other than `keys`.
  void erase_missing(std::string_view prefix, const std::set<std::string>& keys);
  void agent_entities(const collector::AgentState& a);
  void drop_agent_entities(const std::string& agent);
  void tile(const std::string& site, double now);
  void tickets(double now);
  void silences(double now);
  double track(const std::string& key, const std::string& state, double at);

  collector::Health& health_;
  collector::Desk* desk_;
  bool started_ = false;
  std::uint64_t health_seen_ = 0, desk_seen_ = 0;
  double next_second_ = 0;
  std::uint64_t seq_ = 0;
  double at_ = 0;
  std::map<std::string, Entity> entities_;
  std::deque<Delta> kept_;
  std::size_t kept_bytes_ = 0;
  Delta pending_;
  std::map<std::string, AgentBrief> agents_;
  std::map<std::string, std::set<std::string>> site_agents_;        // site -> its agents
  std::map<std::string, std::set<std::string>> agent_entity_keys_;  // agent -> its keys
  std::map<std::string, Since> since_;                              // probe or site key
  std::map<std::string, std::pair<int, int>> site_tickets_;         // site -> active, emergencies
  std::map<std::string, int> watched_;                              // site -> open boards
};

}  // namespace dozor::server
