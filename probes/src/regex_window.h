#pragma once

#include <algorithm>
#include <cstddef>
#include <regex>
#include <string_view>

namespace dozor::probes {

// std::regex (libstdc++) recurses once per character a quantifier consumes, so a pattern such
// as ".*x" over a long line overflows the stack (at about 16 KiB with 8 MiB of stack). Text is
// searched in windows small enough to be safe, overlapping so that any match up to
// kRegexOverlap bytes long is still found. A careless pattern can still take long (std::regex
// backtracks), so callers run the search on the blocking pool, bounded by the probe's deadline.
inline constexpr std::size_t kRegexWindow = 4096;
inline constexpr std::size_t kRegexOverlap = 2048;

/// True when `re` matches somewhere in `text`; `^` and `$` hold only at its start and end.
inline bool search_in_windows(std::string_view text, const std::regex& re) {
  namespace rc = std::regex_constants;
  std::size_t from = 0;
  for (;;) {
    const std::size_t to = std::min(text.size(), from + kRegexWindow);
    auto flags = rc::match_default;
    if (from > 0) flags |= rc::match_prev_avail;
    if (to < text.size()) flags |= rc::match_not_eol;
    if (std::regex_search(text.begin() + from, text.begin() + to, re, flags)) return true;
    if (to == text.size()) return false;
    from += kRegexWindow - kRegexOverlap;
  }
}

}  // namespace dozor::probes
