#pragma once

#include "dozor/probes/registry.h"

namespace dozor::probes::http {
ProbeType probe_type();
}
