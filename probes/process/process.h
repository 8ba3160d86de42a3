#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::process {
/// `process`: how many processes match a name, command line or user, and their memory and CPU.
ProbeType probe_type();
}  // namespace dozor::probes::process
