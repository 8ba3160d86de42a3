#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::log {
/// `log`: follows a log file like `tail -F` and counts the new lines that match a pattern.
ProbeType probe_type();
}  // namespace dozor::probes::log
