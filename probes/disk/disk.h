#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::disk {
/// `disk`: space and inodes used on the filesystem holding a path (statvfs, on the blocking pool).
ProbeType probe_type();
}  // namespace dozor::probes::disk
