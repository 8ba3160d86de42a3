#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::service {
/// `service`: whether a systemd unit is active, through `systemctl show` (a child process).
ProbeType probe_type();
}  // namespace dozor::probes::service
