#include "postgres/libpq.h"

#include <dlfcn.h>

namespace dozor::probes::postgres {
namespace {

struct Loaded {
  Libpq functions;
  std::string error;
};

const Loaded& loaded() {
  static const Loaded once = [] {
    Loaded l;
    // Never closed: sessions may run until the process ends.
    void* handle = ::dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = ::dlerror();
      l.error = std::string("cannot load libpq.so.5 (Debian package libpq5): ") +
                (why ? why : "unknown error");
      return l;
    }
#define DOZOR_LIBPQ_RESOLVE(name)                                                        \
  l.functions.name = reinterpret_cast<decltype(&::name)>(::dlsym(handle, #name));        \
  if (!l.functions.name) {                                                               \
    l.error = "libpq.so.5 lacks " #name "; a libpq of PostgreSQL 10 or later is needed"; \
    return l;                                                                            \
  }
    DOZOR_LIBPQ_FUNCTIONS(DOZOR_LIBPQ_RESOLVE)
#undef DOZOR_LIBPQ_RESOLVE
    return l;
  }();
  return once;
}

}  // namespace

const Libpq* load_libpq(std::string* error) {
  const Loaded& l = loaded();
  if (!l.error.empty()) {
    if (error) *error = l.error;
    return nullptr;
  }
  return &l.functions;
}

const Libpq& pq() { return loaded().functions; }

}  // namespace dozor::probes::postgres
