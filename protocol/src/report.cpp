#include "dozor/protocol/report.h"

namespace dozor::protocol {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::warning:
      return "warning";
    case Status::critical:
      return "critical";
    case Status::unknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<Status> parse_status(std::string_view word) {
  if (word == "ok") return Status::ok;
  if (word == "warning") return Status::warning;
  if (word == "critical") return Status::critical;
  if (word == "unknown") return Status::unknown;
  return std::nullopt;
}

Status worst(Status a, Status b) {
  auto rank = [](Status s) {
    switch (s) {
      case Status::ok:
        return 0;
      case Status::unknown:
        return 1;
      case Status::warning:
        return 2;
      case Status::critical:
        return 3;
    }
    return 1;
  };
  return rank(a) >= rank(b) ? a : b;
}

}  // namespace dozor::protocol
