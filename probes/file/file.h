#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::file {
/// `file`: files matching a path or glob (a backup, an exchange folder's queue): whether they
/// exist, how old the newest and the oldest are, how big the newest is and how many there are.
ProbeType probe_type();
}  // namespace dozor::probes::file
