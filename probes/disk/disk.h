#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::disk {
ProbeType probe_type();
}
