#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::http {
/// `http`: GET or HEAD a URL over HTTP or HTTPS; check status, body, response time and cert expiry.
ProbeType probe_type();
}  // namespace dozor::probes::http
