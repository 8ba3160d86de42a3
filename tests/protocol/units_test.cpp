#include "dozor/protocol/units.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace dozor {
namespace {

using std::chrono::milliseconds;

struct DurationCase {
  const char* text;
  std::int64_t ms;
};

class ParseDurationValid : public testing::TestWithParam<DurationCase> {};

TEST_P(ParseDurationValid, Reads) {
  auto got = parse_duration(GetParam().text);
  ASSERT_TRUE(got.has_value()) << GetParam().text;
  EXPECT_EQ(got->count(), GetParam().ms) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(Units, ParseDurationValid,
                         testing::Values(DurationCase{"500ms", 500}, DurationCase{"10s", 10'000},
                                         DurationCase{"5m", 300'000}, DurationCase{"2h", 7'200'000},
                                         DurationCase{"7d", 604'800'000},
                                         DurationCase{"1h30m", 5'400'000},
                                         DurationCase{"1m30s500ms", 90'500}, DurationCase{"0", 0},
                                         DurationCase{"0s", 0}, DurationCase{"1ms", 1}));

class ParseDurationInvalid : public testing::TestWithParam<const char*> {};

TEST_P(ParseDurationInvalid, Rejects) {
  EXPECT_EQ(parse_duration(GetParam()), std::nullopt) << "'" << GetParam() << "'";
}

INSTANTIATE_TEST_SUITE_P(
    Units, ParseDurationInvalid,
    testing::Values("", "10", "5x", "-1s", "s", "1.5s", "10 s", " 10s", "10s ", "1h30", "10S", "ms",
                    "0x10s",
                    // Each of these overflows a 64-bit count of milliseconds somewhere.
                    "99999999999999999999s", "9999999999999999d", "106751991167d",
                    "4611686018427387903ms18446744073709551609ms"));

TEST(Units, ParseDurationLargestAccepted) {
  // The limit is half of int64 milliseconds (~53 million years), so sums cannot overflow.
  const auto limit = std::numeric_limits<std::int64_t>::max() / 2;
  auto got = parse_duration(std::to_string(limit) + "ms");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->count(), limit);
  EXPECT_EQ(parse_duration(std::to_string(limit + 1) + "ms"), std::nullopt);
  EXPECT_EQ(parse_duration(std::to_string(limit) + "ms1ms"), std::nullopt);
}

TEST(Units, FormatDurationSpellings) {
  EXPECT_EQ(format_duration(milliseconds(0)), "0");
  EXPECT_EQ(format_duration(milliseconds(500)), "500ms");
  EXPECT_EQ(format_duration(milliseconds(10'000)), "10s");
  EXPECT_EQ(format_duration(milliseconds(90'000)), "1m30s");
  EXPECT_EQ(format_duration(milliseconds(5'400'000)), "1h30m");
  EXPECT_EQ(format_duration(milliseconds(604'800'000)), "7d");
  EXPECT_EQ(format_duration(milliseconds(90'061'001)), "1d1h1m1s1ms");
  // Not produced by parse_duration, but a negative difference of two times can be printed.
  EXPECT_EQ(format_duration(milliseconds(-90'000)), "-1m30s");
}

TEST(Units, FormatDurationRoundTrips) {
  for (std::int64_t ms :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{999}, std::int64_t{1'000},
        std::int64_t{59'999}, std::int64_t{3'600'001}, std::int64_t{86'399'999},
        std::int64_t{123'456'789'012}, std::numeric_limits<std::int64_t>::max() / 2}) {
    const std::string text = format_duration(milliseconds(ms));
    auto back = parse_duration(text);
    ASSERT_TRUE(back.has_value()) << ms << " -> " << text;
    EXPECT_EQ(back->count(), ms) << text;
  }
  for (const char* text : {"500ms", "10s", "5m", "2h", "7d", "1h30m", "1d2h3m4s5ms"}) {
    auto d = parse_duration(text);
    ASSERT_TRUE(d.has_value()) << text;
    EXPECT_EQ(format_duration(*d), text);
  }
}

struct SizeCase {
  const char* text;
  std::uint64_t bytes;
};

class ParseSizeValid : public testing::TestWithParam<SizeCase> {};

TEST_P(ParseSizeValid, Reads) {
  auto got = parse_size(GetParam().text);
  ASSERT_TRUE(got.has_value()) << GetParam().text;
  EXPECT_EQ(*got, GetParam().bytes) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Units, ParseSizeValid,
    testing::Values(SizeCase{"64MiB", 64ull << 20}, SizeCase{"1GiB", 1ull << 30},
                    SizeCase{"512KiB", 512ull << 10}, SizeCase{"2TiB", 2ull << 40},
                    SizeCase{"10MB", 10'000'000}, SizeCase{"1kB", 1'000}, SizeCase{"1KB", 1'000},
                    SizeCase{"3GB", 3'000'000'000}, SizeCase{"100B", 100}, SizeCase{"123", 123},
                    SizeCase{"0", 0},
                    SizeCase{"18446744073709551609", 18'446'744'073'709'551'609ull}));

class ParseSizeInvalid : public testing::TestWithParam<const char*> {};

TEST_P(ParseSizeInvalid, Rejects) {
  EXPECT_EQ(parse_size(GetParam()), std::nullopt) << "'" << GetParam() << "'";
}

INSTANTIATE_TEST_SUITE_P(Units, ParseSizeInvalid,
                         testing::Values("", "1.5MiB", "MiB", "12XB", "-1", "64 MiB", "64mib",
                                         "64MiB ", "1MiB1KiB", "99999999999999999999",
                                         "17179869184GiB"));

}  // namespace
}  // namespace dozor

namespace dozor {
namespace {

TEST(Units, Timestamps) {
  EXPECT_EQ(format_timestamp(1795435200.25), "2026-11-23T12:00:00.250Z");
  EXPECT_EQ(parse_timestamp("2026-11-23T12:00:00Z"), 1795435200.0);
  EXPECT_EQ(parse_timestamp("2026-11-23T14:00:00.5+02:00"), 1795435200.5);
  EXPECT_EQ(parse_timestamp(format_timestamp(1795435200.25)), 1795435200.25);
  for (const char* bad : {"2026-02-30T00:00:00Z", "2026-11-23T12:00:01.Z", "2026-11-23 12:00:00Z",
                          "2026-11-23T12:00:00", "2026-13-01T00:00:00Z", "yesterday"})
    EXPECT_FALSE(parse_timestamp(bad)) << bad;
}

}  // namespace
}  // namespace dozor
