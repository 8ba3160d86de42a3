#pragma once

#include <stdexcept>

#include "dozor/protocol/sqlite.h"

namespace dozor::collector {

/// The store was written by a newer collector: its schema is one this binary does not know.
struct SchemaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The newest schema version this binary knows.
int latest_schema_version();

/// Brings the store's schema (its version in PRAGMA user_version) up to latest_schema_version()
/// by applying the numbered migrations it lacks, all in one transaction: a failed migration
/// leaves the store as it was. Returns the version found. Throws SchemaError for a newer schema.
int migrate(sqlite::Database& db);

}  // namespace dozor::collector
