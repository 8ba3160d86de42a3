#pragma once

#include <stdexcept>

#include "dozor/collector/sql.h"

namespace dozor::collector {

/// The store was written by a newer collector: its schema is one this binary does not know.
struct SchemaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The newest schema version this binary knows.
int latest_schema_version();

/// Brings the store's schema up to latest_schema_version() by applying the numbered migrations it
/// lacks, all in one transaction: a failed migration leaves the store as it was. The same
/// migrations on both engines; the version is SQLite's PRAGMA user_version, or PostgreSQL's
/// table dozor_schema (one row per migration applied, under an advisory lock so that collectors
/// starting together migrate once). Returns the version found. Throws SchemaError for a newer
/// schema. `target` stops at an earlier version (tests of the upgrade from it).
int migrate(sql::Database& db, int target = 0);

}  // namespace dozor::collector
