#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::host {
/// `host`: CPU, load, memory, swap and uptime of the machine the agent runs on, from /proc.
ProbeType probe_type();
}  // namespace dozor::probes::host
