#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::modbus {
/// `modbus`: one device (unit) on a Modbus TCP, RTU or RTU-over-TCP link; reads its points in
/// the fewest requests, checks ranges and frozen values.
ProbeType probe_type();
}  // namespace dozor::probes::modbus
