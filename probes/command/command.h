#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::command {
/// `command`: runs a monitoring plugin (Nagios plugin API) and reports its status, first line
/// and performance data.
ProbeType probe_type();
}  // namespace dozor::probes::command
