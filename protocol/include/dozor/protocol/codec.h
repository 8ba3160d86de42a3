#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dozor/protocol/report.h"

namespace dozor::protocol {

/// Why a body was refused: the JSON path of the offending field and what was wrong with it.
struct DecodeError {
  std::string field;    // e.g. "results[2].metrics[0].value"; empty when the body is not JSON
  std::string message;  // e.g. "expected a number"
  std::string to_string() const { return field.empty() ? message : field + ": " + message; }
};

/// A decoded value or the error that stopped decoding; never an exception.
template <class T>
struct Decoded {
  std::optional<T> value;
  DecodeError error;
  explicit operator bool() const { return value.has_value(); }
};

std::string encode(const Report& report);
std::string encode(const Result& result);
/// A report whose results are already encoded (as the agent's spool keeps them): spliced, not
/// re-encoded. `report.results` is ignored.
std::string encode_with_results(const Report& report, const std::vector<std::string>& results);
std::string encode(const Ack& ack);
/// One JSON array of results in wire format (what `dozor-agent --once --format json` prints).
std::string encode_results(const std::vector<Result>& results, bool pretty = false);
/// {"error": message, "reason": reason}: the body of every 4xx/5xx the collector sends.
std::string encode_error(std::string_view reason, std::string_view message);
std::string encode(const EnrollRequest& request);
std::string encode(const IssuedCertificate& issued);

/// Strict: unknown fields are ignored, missing or mistyped ones are errors naming the field.
Decoded<Report> decode_report(std::string_view body);
Decoded<Ack> decode_ack(std::string_view body);
Decoded<Refusal> decode_error(std::string_view body);
Decoded<std::vector<Result>> decode_results(std::string_view body);
Decoded<Result> decode_result(std::string_view body);
/// Bounded: a token of at most 128 bytes and a CSR of at most 8 KiB.
Decoded<EnrollRequest> decode_enroll_request(std::string_view body);
Decoded<IssuedCertificate> decode_issued(std::string_view body);

}  // namespace dozor::protocol
