#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::postgres {
/// `postgres`: a PostgreSQL server's health through libpq (latency, size, connections, oldest
/// transaction, standby lag, an optional query's value), on the blocking pool.
ProbeType probe_type();
}  // namespace dozor::probes::postgres
