#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "dozor/collector/sql.h"

namespace dozor::collector::sql {

std::unique_ptr<Database> open_sqlite(const std::string& path);
std::unique_ptr<Database> open_postgres(const Options& options);

/// `?` and `?N` parameters as PostgreSQL's `$N`, outside quoted strings and names.
std::string numbered_parameters(std::string_view sql);

}  // namespace dozor::collector::sql
