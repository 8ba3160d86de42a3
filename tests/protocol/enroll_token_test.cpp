#include "dozor/protocol/enroll_token.h"

#include <gtest/gtest.h>

#include "dozor/protocol/codec.h"

namespace dozor::protocol {
namespace {

TEST(EnrollToken, CarriesTheCaPinAndASecretOnlyItsHashOfIsKept) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // base64url of the first 16 bytes of that digest.
  EXPECT_EQ(ca_pin("abc"), "ungWv48Bz-pBQUDeXa4iIw");
  const std::string token = make_enroll_token(ca_pin("abc"));
  std::string message;
  const auto t = parse_enroll_token(token, message);
  ASSERT_TRUE(t) << message;
  EXPECT_EQ(t->pin, ca_pin("abc"));
  EXPECT_EQ(t->secret.size(), 32u);
  EXPECT_NE(parse_enroll_token(make_enroll_token(ca_pin("abc")), message)->secret, t->secret);
  EXPECT_EQ(enroll_token_hash(t->secret).size(), 64u);
}

TEST(EnrollToken, ATokenCutShortOrFromElsewhereIsNamedAsSuch) {
  std::string message;
  EXPECT_FALSE(parse_enroll_token("eyJhbGciOi.foo", message));
  EXPECT_NE(message.find("not an enrollment token"), std::string::npos);
  const std::string token = make_enroll_token(ca_pin("abc"));
  for (const std::string& bad :
       {token.substr(0, token.size() - 1), token + "x",
        token.substr(0, 10) + "!" + token.substr(11), std::string("dz1.")}) {
    EXPECT_FALSE(parse_enroll_token(bad, message)) << bad;
    EXPECT_NE(message.find("malformed"), std::string::npos) << bad;
  }
}

TEST(EnrollRequest, IsBoundedAndNamesTheFieldThatIsWrong) {
  EXPECT_TRUE(decode_enroll_request(encode(EnrollRequest{"dz1.x", "-----BEGIN"})));
  const auto big = decode_enroll_request(encode(EnrollRequest{"dz1.x", std::string(9000, 'A')}));
  EXPECT_FALSE(big);
  EXPECT_EQ(big.error.to_string(), "csr: expected 1-8192 bytes of PEM");
  EXPECT_EQ(decode_enroll_request(R"({"csr": "x"})").error.to_string(), "token: missing");
}

}  // namespace
}  // namespace dozor::protocol
