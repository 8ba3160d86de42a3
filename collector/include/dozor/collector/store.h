#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dozor/collector/health.h"
#include "dozor/collector/sql.h"

namespace dozor::collector {

/// The collector's durable state, in SQLite (a file, WAL) or PostgreSQL (sql.h): per agent its
/// identity and seq bookkeeping, per probe its last state; the Desk keeps its tickets in the same
/// database. A report's changes are one transaction (Health opens it), committed before the
/// report is acked. Brings the schema up to date when opened (schema.h). Not thread-safe: Health
/// calls it under its lock.
class Store {
 public:
  /// Opens (SQLite: creates) the store; throws sql::Error when it cannot be used, SchemaError
  /// when its schema is newer than this binary's.
  explicit Store(const sql::Options& options);
  /// A store by its URL alone (sql::Options::url).
  explicit Store(const std::string& url) : Store(sql::Options{url, ""}) {}
  explicit Store(std::unique_ptr<sql::Database> db);

  std::vector<AgentState> load();
  /// One agent as stored, if it is; those of `agents` that are stored.
  std::optional<AgentState> load(const std::string& agent);
  std::vector<AgentState> load(const std::vector<std::string>& agents);
  sql::Database& db() { return *db_; }

  /// Several collectors on one PostgreSQL store (lease.h): from now on save() writes the
  /// agent's row only over the version it read (AgentState::row_version one less than the one
  /// saved) and only for a certificate not revoked, through whichever collector; else the
  /// transaction fails (stale_agent(), revoked()) and stores nothing. Inside the upsert itself:
  /// no round trip of its own, and a second collector's report of the agent waits on the row.
  void share();
  static bool stale_agent(const sql::Error& e);
  static bool revoked(const sql::Error& e);
  /// A follower's report for the leader's desk: the agent and the results accepted.
  void log_report(const std::string& agent, const std::string& results);
  struct LoggedReport {
    std::string agent, results;
  };
  /// The oldest logged reports, at most `limit`, deleted inside the caller's transaction (the
  /// leader's, whose desk acts on them): taken exactly once, or again when it rolls back.
  std::vector<LoggedReport> take_logged(std::size_t limit);

  /// Saves `agent` after a report, inside the caller's transaction: its row, the seqs it accepted
  /// above the watermark (`above`), and the probes whose state changed.
  /// `serial`: the certificate the report came over (checked against revocations when shared).
  void save(const AgentState& agent, const std::vector<std::uint64_t>& above,
            const std::vector<std::string>& changed_probes, const std::string& serial = "");
  /// Deletes the named probes of `agent`, or the agent and all its probes when `probes` is
  /// empty, inside the caller's transaction.
  void forget(const std::string& agent, const std::vector<std::string>& probes);

  /// History for the service reports: a probe's status changed (or it was first seen), or an
  /// agent fell silent or came back (`probe` empty). Inside the caller's transaction if any.
  struct StateChange {
    std::string site, agent, probe;
    double ts = 0;
    int status = 0;  // a probe's protocol::Status; the agent: kAgentUp or kAgentSilent
  };
  static constexpr int kAgentUp = 0, kAgentSilent = 4;
  void state_change(const StateChange& c);
  /// Deletes the state changes older than `before` (the Desk prunes its closed tickets); how
  /// many went.
  std::size_t prune_history(double before);

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

  /// A one-time enrollment token (`dozorctl enroll create`): only the hash of its secret is kept.
  struct EnrollToken {
    std::string id;  // public: the first 12 hex digits of the hash
    std::string hash, agent, site, by, comment;
    double created_at = 0, expires_at = 0;
    std::int64_t uses = 1, used = 0;
    double revoked_at = 0;  // 0: not revoked
    double last_used_at = 0;
    bool replace = false;  // enrolling revokes the agent's earlier certificates
  };
  /// Adds a token; tokens expired a month ago go.
  void add_token(const EnrollToken& t);
  std::optional<EnrollToken> token_by_hash(const std::string& hash);
  std::vector<EnrollToken> tokens();
  /// False when there is no such token, or it was revoked already.
  bool revoke_token(const std::string& id, double now);
  /// Revokes the unrevoked tokens for `agent`; how many.
  std::size_t revoke_tokens_of(const std::string& agent, double now);

  /// A certificate this collector issued: at an enrollment (`how` = "enroll <token id>") or a
  /// renewal ("renew <previous serial>"), to whom and asked from where.
  struct Issued {
    std::string serial, agent, site, how, source;
    double issued_at = 0, not_after = 0;
  };
  /// Records `issued`, and with `token_id` takes one use of that token, in one transaction;
  /// false (nothing recorded) when the token has no use left, expired or was revoked meanwhile.
  bool record_issued(const Issued& issued, const std::string& token_id = "");
  std::vector<Issued> issued(const std::string& agent = "");
  /// Serials of `agent` that may still be in use: the one it presented last and those issued to
  /// it that have not expired, less the revoked ones.
  std::vector<std::string> live_serials(const std::string& agent, double now);

 private:
  static sql::Database& migrated(sql::Database& db);

  std::vector<AgentState> load_where(const std::vector<std::string>* ids);

  std::unique_ptr<sql::Database> db_;
  std::optional<sql::Statement> upsert_shared_;  // share()
  sql::Statement upsert_agent_, insert_seq_, purge_seqs_, reset_seqs_, upsert_probe_, state_change_;
};

}  // namespace dozor::collector
