#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::cert {
/// `cert`: the TLS certificate a server presents: days to expiry, chain and name validity.
ProbeType probe_type();
}  // namespace dozor::probes::cert
