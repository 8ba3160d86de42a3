#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::tcp {
/// `tcp`: connect to host:port within the timeout; optionally send a line and expect a reply.
ProbeType probe_type();
}  // namespace dozor::probes::tcp
