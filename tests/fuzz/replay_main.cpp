// Replays fuzz inputs without libFuzzer, so any compiler and sanitizer can run the corpus:
//   aurora_fuzz_replay <write|filter|query|net> <file or directory>...   (net: with aurora::net)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int aurora_fuzz_write_one(const std::uint8_t* data, std::size_t size);
extern "C" int aurora_fuzz_filter_one(const std::uint8_t* data, std::size_t size);
extern "C" int aurora_fuzz_query_one(const std::uint8_t* data, std::size_t size);
#ifdef AURORA_FUZZ_NET
extern "C" int aurora_fuzz_net_one(const std::uint8_t* data, std::size_t size);
#endif

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <write|filter|query|net> <file or directory>...\n", argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  int (*one)(const std::uint8_t*, std::size_t) = nullptr;
  if (target == "write") one = &aurora_fuzz_write_one;
  if (target == "filter") one = &aurora_fuzz_filter_one;
  if (target == "query") one = &aurora_fuzz_query_one;
#ifdef AURORA_FUZZ_NET
  if (target == "net") one = &aurora_fuzz_net_one;
#endif
  if (one == nullptr) {
    std::fprintf(stderr, "unknown target %s\n", target.c_str());
    return 2;
  }
  std::vector<std::filesystem::path> files;
  for (int i = 2; i < argc; ++i) {
    const std::filesystem::path p = argv[i];
    if (std::filesystem::is_directory(p)) {
      for (const auto& entry : std::filesystem::directory_iterator(p)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.push_back(p);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "no inputs\n");
    return 2;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
    one(data.data(), data.size());
  }
  std::printf("replayed %zu %s inputs\n", files.size(), target.c_str());
  return 0;
}
