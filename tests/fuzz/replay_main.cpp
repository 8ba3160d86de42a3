// Runs a libFuzzer target without libFuzzer (g++ builds, ctest): every file of the given corpus
// folders, then a fixed number of deterministic mutations of them, so that the target's
// invariants are checked on every test run. `scripts/fuzz` runs the real, coverage-guided fuzzer.
//
//   <target>_replay CORPUS_DIR... [--mutations N]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

// Byte-level mutations of the kinds libFuzzer starts with: flip, insert, erase, splice, repeat.
std::string mutate(const std::vector<std::string>& corpus, std::mt19937_64& rng) {
  std::string s = corpus[rng() % corpus.size()];
  const char* tokens[] = {"{",
                          "}",
                          "[",
                          "]",
                          "\"",
                          ":",
                          ",",
                          "null",
                          "-1",
                          "1e400",
                          "\\u0000",
                          "\xff",
                          "18446744073709551616",
                          "\"seq\"",
                          "\"status\"",
                          "true"};
  const int steps = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < steps; ++i) {
    const std::size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 5) {
      case 0:
        if (!s.empty()) s[at % s.size()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:
        s.insert(at, tokens[rng() % std::size(tokens)]);
        break;
      case 2:
        s.erase(at, rng() % 16);
        break;
      case 3:
        s.insert(at, corpus[rng() % corpus.size()].substr(0, rng() % 64));
        break;
      case 4:
        s.insert(at, std::string(rng() % 8, s.empty() ? '[' : s[at % s.size()]));
        break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> corpus;
  long mutations = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::atol(argv[++i]);
      continue;
    }
    for (const auto& entry : std::filesystem::directory_iterator(arg)) {
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      corpus.push_back(ss.str());
    }
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "no corpus files\n");
    return 2;
  }
  for (const auto& c : corpus) run(c);
  std::mt19937_64 rng(20261123);
  for (long i = 0; i < mutations; ++i) run(mutate(corpus, rng));
  std::printf("%zu corpus files and %ld mutations: no invariant broken\n", corpus.size(),
              mutations);
  return 0;
}
