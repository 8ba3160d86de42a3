#pragma once

#include <libpq-fe.h>

#include <string>

namespace dozor::probes::postgres {

// The libpq functions the probe calls. An agent maps libpq only when it has a postgres probe:
// linked in, libpq's own dependencies (Kerberos, LDAP, GnuTLS, ...) would add ~3 MiB to every
// agent's RSS, with or without one.
// clang-format off
#define DOZOR_LIBPQ_FUNCTIONS(X)                                                            \
  X(PQcancel) X(PQclear) X(PQconnectPoll) X(PQconnectStartParams) X(PQconninfoFree)         \
  X(PQconninfoParse) X(PQconsumeInput) X(PQerrorMessage) X(PQfinish) X(PQfreeCancel)        \
  X(PQfreemem) X(PQgetCancel) X(PQgetResult) X(PQgetisnull) X(PQgetvalue) X(PQisBusy)       \
  X(PQnfields) X(PQntuples) X(PQresultErrorField) X(PQresultErrorMessage) X(PQresultStatus) \
  X(PQsendQuery) X(PQsocket) X(PQstatus)
// clang-format on

struct Libpq {
#define DOZOR_LIBPQ_MEMBER(name) decltype(&::name) name = nullptr;
  DOZOR_LIBPQ_FUNCTIONS(DOZOR_LIBPQ_MEMBER)
#undef DOZOR_LIBPQ_MEMBER
};

/// Loads libpq.so.5 on the first call (thread-safe); nullptr, with `error` saying why, when it
/// cannot be loaded.
const Libpq* load_libpq(std::string* error);

/// The loaded library; only after load_libpq succeeded.
const Libpq& pq();

}  // namespace dozor::probes::postgres
