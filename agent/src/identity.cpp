#include "identity.h"

#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include "dozor/protocol/x509.h"

namespace dozor::agent {
namespace {

using protocol::x509::Bio;
using protocol::x509::Cert;
using protocol::x509::Key;
using protocol::x509::memory;
using protocol::x509::Req;
using protocol::x509::text;

Key read_key(const std::string& pem) {
  auto bio = memory(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return key;
}

Cert read_cert(const std::string& pem) {
  auto certs = protocol::x509::read_certs(pem);
  return certs.empty() ? nullptr : std::move(certs.front());
}

double unix_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<double>(timegm(&tm));
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

}  // namespace

std::string make_key() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("cannot make an EC P-256 key");
  Bio out(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return text(out.get());
}

std::string make_csr(const std::string& key_pem, const std::string& cn) {
  Key key = read_key(key_pem);
  if (!key) throw std::runtime_error("not a PEM private key");
  Req req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  if (!cn.empty())
    X509_NAME_add_entry_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_REQ_set_pubkey(req.get(), key.get());
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    ERR_clear_error();
    throw std::runtime_error("cannot sign the certificate request");
  }
  Bio out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), req.get());
  return text(out.get());
}

bool key_matches(const std::string& cert_pem, const std::string& key_pem) {
  Cert cert = read_cert(cert_pem);
  Key key = read_key(key_pem);
  const bool ok = cert && key && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::optional<Validity> validity(const std::string& pem) {
  Cert cert = read_cert(pem);
  if (!cert) return std::nullopt;
  return Validity{unix_time(X509_get0_notBefore(cert.get())),
                  unix_time(X509_get0_notAfter(cert.get()))};
}

void write_atomically(const std::string& path, const std::string& bytes, unsigned mode) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = (folder / ("." + target.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) fail("cannot create a file in " + folder.string());
  struct Close {
    int fd;
    std::string path;
    bool done = false;
    ~Close() {
      if (fd >= 0) ::close(fd);
      if (!done) ::unlink(path.c_str());
    }
  } guard{fd, tmp};
  struct stat st {};
  if (::fchmod(fd, mode) != 0) fail("chmod " + tmp);
  if (::geteuid() == 0 && ::stat(folder.c_str(), &st) == 0 &&
      ::fchown(fd, st.st_uid, st.st_gid) != 0)
    fail("chown " + tmp);
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write " + tmp);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("fsync " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename to " + path);
  guard.done = true;
  // The rename itself is durable once the folder is.
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace dozor::agent
