#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::bas {
/// `bas`: a BAS / 1C:Enterprise 8.3 server cluster seen through the platform's `rac` client:
/// sessions per infobase and kind, blocked sessions, long calls, worker processes, locks.
ProbeType probe_type();
}  // namespace dozor::probes::bas
