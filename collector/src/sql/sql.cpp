#include <algorithm>
#include <cctype>

#include "engines.h"

namespace dozor::collector::sql {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool starts_with_scheme(const std::string& url) {
  return url.starts_with("postgres://") || url.starts_with("postgresql://");
}

}  // namespace

std::unique_ptr<Database> open(const Options& options) {
  if (starts_with_scheme(options.url)) return open_postgres(options);
  std::string path = options.url;
  if (path.starts_with("sqlite:")) path.erase(0, 7);
  if (path.empty()) throw Error("store: the SQLite path is empty");
  return open_sqlite(path);
}

std::string redacted(const std::string& url) {
  if (!starts_with_scheme(url)) return url;
  // scheme://user:password@host... -> scheme://user:***@host...
  const auto authority = url.find("://") + 3;
  const auto at = url.find('@', authority);
  if (at == std::string::npos) return url;
  const auto colon = url.find(':', authority);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::string upsert(std::string_view table, std::string_view columns, std::string_view key) {
  std::string names, marks, sets;
  std::string_view rest = columns;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view column = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (!names.empty()) {
      names += ", ";
      marks += ", ";
    }
    names += column;
    marks += '?';
    const bool is_key = [&] {
      std::string_view keys = key;
      while (!keys.empty()) {
        const auto c = keys.find(',');
        if (trim(keys.substr(0, c)) == column) return true;
        keys = c == std::string_view::npos ? std::string_view{} : keys.substr(c + 1);
      }
      return false;
    }();
    if (is_key) continue;
    if (!sets.empty()) sets += ", ";
    sets += std::string(column) + " = excluded." + std::string(column);
  }
  std::string sql = "INSERT INTO " + std::string(table) + " (" + names + ") VALUES (" + marks +
                    ") ON CONFLICT (" + std::string(key) + ") DO ";
  return sql + (sets.empty() ? "NOTHING" : "UPDATE SET " + sets);
}

std::string numbered_parameters(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 0;
  char quote = 0;  // inside '...' or "..."
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote) {
      out += c;
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    std::size_t j = i + 1;
    while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) ++j;
    if (j > i + 1) {
      const int n = std::stoi(std::string(sql.substr(i + 1, j - i - 1)));
      next = std::max(next, n);
      out += '$' + std::to_string(n);
      i = j - 1;
    } else {
      out += '$' + std::to_string(++next);
    }
  }
  return out;
}

}  // namespace dozor::collector::sql
