#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dozor/collector/health.h"
#include "dozor/protocol/sqlite.h"

namespace dozor::collector {

/// The collector's durable state in a SQLite file (WAL): per agent its identity and seq
/// bookkeeping, per probe its last state; the Desk keeps its tickets in the same file. A report's
/// changes are one transaction (Health opens it), committed before the report is acked. Not
/// thread-safe: Health calls it under its lock.
class Store {
 public:
  /// Opens or creates the file; throws sqlite::Error when it cannot be used.
  explicit Store(const std::string& path);

  std::vector<AgentState> load();
  sqlite::Database& db() { return db_; }

  /// Saves `agent` after a report, inside the caller's transaction: its row, the seqs it accepted
  /// above the watermark (`above`), and the probes whose state changed.
  void save(const AgentState& agent, const std::vector<std::uint64_t>& above,
            const std::vector<std::string>& changed_probes);
  /// Deletes the named probes of `agent`, or the agent and all its probes when `probes` is
  /// empty, inside the caller's transaction.
  void forget(const std::string& agent, const std::vector<std::string>& probes);

  /// The certificate an agent presented last (its serial, hex as openssl prints it), kept across
  /// restarts and forgets so that the agent can be revoked at any time.
  void save_certificate(const std::string& agent, const std::string& serial, double not_after,
                        double now);
  std::optional<std::string> certificate_serial(const std::string& agent);

  /// A revoked certificate: refused at every handshake from then on.
  struct Revocation {
    std::string serial, agent, by, comment;
    double revoked_at = 0;
  };
  void revoke(const Revocation& r);
  std::vector<Revocation> revocations();

 private:
  sqlite::Database db_;
  sqlite::Statement upsert_agent_, insert_seq_, purge_seqs_, reset_seqs_, upsert_probe_;
};

}  // namespace dozor::collector
