# Compiles the board's static files into the collector: one C++ file with each file's bytes,
# its content type and an ETag. Run by the build (see ../CMakeLists.txt): -DDIR -DFILES -DOUT.
string(REPLACE "," ";" files "${FILES}")
set(arrays "")
set(table "")
set(i 0)
foreach(name IN LISTS files)
  set(path "${DIR}/${name}")
  file(READ "${path}" hex HEX)
  file(SHA256 "${path}" sum)
  string(SUBSTRING "${sum}" 0 16 etag)
  file(SIZE "${path}" size)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  if(name MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(name MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  elseif(name MATCHES "\\.js$")
    set(type "text/javascript; charset=utf-8")
  elseif(name MATCHES "\\.svg$")
    set(type "image/svg+xml")
  else()
    message(FATAL_ERROR "board/${name}: no content type known for it")
  endif()
  if(name STREQUAL "index.html")
    set(url "/")
  else()
    set(url "/board/${name}")
  endif()
  string(APPEND arrays "const unsigned char f${i}[] = {${bytes}0};\n")
  string(APPEND table "    {\"${url}\", \"${type}\", {reinterpret_cast<const char*>(f${i}), ${size}}, \"\\\"${etag}\\\"\"},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE "${OUT}.tmp" "// Generated from server/board by embed.cmake; edit the files there.
#include \"assets.h\"

namespace dozor::server {
namespace {
${arrays}
const Asset assets[] = {
${table}};
}  // namespace

const Asset* find_asset(std::string_view url) {
  for (const auto& a : assets)
    if (a.url == url) return &a;
  return nullptr;
}

}  // namespace dozor::server
")
# Only a changed file is rewritten: an unchanged board recompiles nothing.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
