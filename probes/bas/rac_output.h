#pragma once

// What the 1C:Enterprise `rac` client prints: blocks of `key : value` lines, one block per object,
// blocks separated by blank lines. Pure functions, no I/O, no Asio (the fuzz target compiles
// this file alone).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dozor::probes::bas {

struct RacField {
  std::string key;    // kebab-case as rac prints it, e.g. "blocked-by-dbms"
  std::string value;  // unquoted and unescaped; may be empty
  bool quoted = false;
  bool operator==(const RacField&) const = default;
};

/// One object of a `list` command: a cluster, a session, a worker process...
struct RacBlock {
  std::vector<RacField> fields;
  /// The value of the first field named `key`, nullptr when there is none.
  const std::string* find(std::string_view key) const;
  bool operator==(const RacBlock&) const = default;
};

struct RacOutput {
  std::vector<RacBlock> blocks;
  std::string error;  // empty when the text parsed: "line 3: expected 'key : value', got '...'"
  bool ok() const { return error.empty(); }
};

/// Parses rac's text output. Tolerates a UTF-8 BOM, CRLF line ends, padding and trailing spaces,
/// empty values and quoted values ("..." with \" and \\ escapes) that run over several lines.
/// Empty text is zero blocks (a `session list` with no sessions prints nothing).
RacOutput parse_rac_output(std::string_view text);

/// Prints blocks the way rac does (without the column padding); parse_rac_output reads it back.
std::string format_rac_output(const std::vector<RacBlock>& blocks);

// Typed views of the blocks of each command the bas probe runs. A block without its id key, or
// a number or yes/no value that does not read as one, is an error naming the block and key.

struct RacCluster {
  std::string id;  // uuid
  std::string name;
  std::string host;
};

struct RacInfobase {
  std::string id;  // uuid
  std::string name;
};

struct RacSession {
  std::string id;           // uuid
  std::int64_t number = 0;  // session-id
  std::string infobase;     // uuid of the infobase
  std::string app_id;       // 1CV8C, 1CV8, WebClient, BackgroundJob, Designer, COMConnection...
  std::string user_name;
  std::string host;
  // Number of the session that holds the lock this one waits for, in the DBMS (transactional
  // lock) or in the cluster's lock service (managed lock); 0 when it waits for none.
  std::int64_t blocked_by_dbms = 0;
  std::int64_t blocked_by_ls = 0;
  // rac prints durations of calls in milliseconds (duration-current, db-proc-took); converted.
  double call_seconds = 0;
  double db_proc_took_seconds = 0;
  std::int64_t memory_total = 0;  // bytes
  bool hibernate = false;         // asleep: its client is gone for now, the session kept
};

struct RacProcess {
  std::string id;  // uuid
  std::string host;
  std::int64_t port = 0;
  std::int64_t pid = 0;
  bool enabled = true;  // is-enable
  bool running = false;
  std::string use;  // used, not-used, used-as-reserve
  // "available-perfomance" (sic): rac's estimate of the worker's spare capacity; higher is better.
  std::optional<double> available_performance;
  std::int64_t connections = 0;
  double memory_bytes = 0;           // memory-size is in KiB
  double memory_excess_seconds = 0;  // memory-excess-time: seconds over the cluster's limit
  double avg_call_seconds = 0;       // avg-call-time, seconds (may print as 9.99E-05)
};

/// One licence held by a session, from `session list --licenses` (a block of its own, joined to
/// the session by its uuid). Captured outputs (open tools' fixtures and their users' issues):
/// a server's software licence `license-type : soft`, `issued-by-server : yes`, `series :
/// "8100886831"`, `full-name : "file:///var/1C/licenses/20132343433446.lic"`; a HASP key
/// `license-type : HASP`, `net : yes`, `series : "ORG8A"`; a client's own licence
/// `issued-by-server : no` with `rmngr-address :` empty and `rmngr-port : 0`.
struct RacLicense {
  std::string session;  // uuid
  std::string series;   // key series or licence number, e.g. ORG8A, 8100886831
  std::string type;     // soft, HASP, ... as rac prints it
  bool issued_by_server = false;
  bool net = false;
  std::int64_t max_users_all = 0;
  std::string full_name;  // the licence file, or empty for a key
};

std::string read_clusters(const RacOutput& out, std::vector<RacCluster>& clusters);
std::string read_infobases(const RacOutput& out, std::vector<RacInfobase>& infobases);
std::string read_sessions(const RacOutput& out, std::vector<RacSession>& sessions);
std::string read_processes(const RacOutput& out, std::vector<RacProcess>& processes);
std::string read_licenses(const RacOutput& out, std::vector<RacLicense>& licenses);

}  // namespace dozor::probes::bas
