// E-mail through an SMTP relay (RFC 5321), one message per ticket event.
//
// Plain SMTP only: no STARTTLS, no AUTH. Point it at a relay on the collector's host or a trusted
// network (a local Postfix or the company's relay that accepts the collector by address).

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <ctime>
#include <stdexcept>

#include "dozor/protocol/units.h"
#include "dozor/protocol/url.h"
#include "notifiers.h"
#include "transport.h"

namespace dozor::collector::notify {
namespace {

namespace beast = boost::beast;
using asio::redirect_error;
using asio::use_awaitable;
using boost::system::error_code;

constexpr std::size_t kMaxReply = 64 * 1024;  // a reply longer than this is not from a relay
constexpr std::size_t kMaxLine = 998;         // RFC 5322 2.1.1, without the CRLF
constexpr std::size_t kMaxSubject = 200;

std::string upper(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

// Ticket text goes into a header: line breaks there would start new headers.
std::string one_line(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) out += (ch < ' ' || ch == 0x7f) ? ' ' : static_cast<char>(ch);
  return out;
}

// Cuts at most `max` bytes without splitting a UTF-8 sequence.
std::size_t utf8_cut(const std::string& s, std::size_t from, std::size_t max) {
  std::size_t end = std::min(s.size(), from + max);
  while (end > from && end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return end == from ? std::min(s.size(), from + max) : end;
}

// Headers are ASCII (RFC 5322); a site or summary in Ukrainian goes as RFC 2047 encoded-words of
// at most 75 characters, folded onto continuation lines.
std::string header_text(const std::string& s) {
  if (std::all_of(s.begin(), s.end(), [](unsigned char ch) { return ch < 0x80; })) return s;
  std::string out;
  for (std::size_t from = 0; from < s.size();) {
    const std::size_t to = utf8_cut(s, from, 45);  // 60 base64 characters + 12 around them
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(std::string_view(s).substr(from, to - from)) + "?=";
    from = to;
  }
  return out;
}

// RFC 5322 date in UTC; the names are spelt out, so that no locale changes them.
std::string mail_date(std::time_t t) {
  static constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                       "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

// "P1" whether the API says "P1" or 1.
std::string priority(const nlohmann::json& ticket) {
  std::string p = field(ticket, "priority");
  if (!p.empty() && std::isdigit(static_cast<unsigned char>(p[0]))) p.insert(0, "P");
  return p;
}

std::string subject(const Notification& n) {
  const auto& t = n.ticket;
  std::string s = "[dozor]";
  if (auto c = field(t, "class"); !c.empty()) s += " " + upper(c);
  if (auto p = priority(t); !p.empty()) s += " " + p;
  s += " " + n.event + " #" + field(t, "id");
  std::string where = field(t, "site");
  if (auto agent = field(t, "agent"); !agent.empty()) where += (where.empty() ? "" : "/") + agent;
  if (auto probe = field(t, "probe"); !probe.empty()) where += (where.empty() ? "" : " ") + probe;
  if (!where.empty()) s += ": " + where;
  if (auto summary = field(t, "summary"); !summary.empty()) s += ": " + summary;
  s = one_line(s);
  if (s.size() > kMaxSubject) s = s.substr(0, utf8_cut(s, 0, kMaxSubject - 3)) + "...";
  return s;
}

std::string text_body(const Notification& n) {
  const auto& t = n.ticket;
  std::string kind = field(t, "class");
  if (auto p = priority(t); !p.empty()) kind += (kind.empty() ? "" : ", ") + p;
  std::string out = "Ticket #" + field(t, "id");
  if (!kind.empty()) out += " (" + kind + ")";
  out += ": " + n.event + ".\n\n";
  const std::pair<const char*, std::string> rows[] = {
      {"Summary", field(t, "summary")},
      {"Site", field(t, "site")},
      {"Agent", field(t, "agent")},
      {"Probe", field(t, "probe")},
      {"Rule", field(t, "rule")},
      {"Status", field(t, "status")},
      {"Opened", rfc3339_field(t, "opened_at").value_or("")},
      {"Deadline", rfc3339_field(t, "deadline").value_or("")},
      {"Resolved", rfc3339_field(t, "resolved_at").value_or("")},
  };
  for (const auto& [label, value] : rows)
    if (!value.empty()) out += (std::string(label) + ":         ").substr(0, 10) + value + "\n";
  std::string d = details(t);
  while (d.ends_with("\n")) d.pop_back();
  if (!d.empty()) out += "\nDetails:\n" + d + "\n";
  out += "\n-- \ndozor event " + std::to_string(n.id) + " at " + format_timestamp(n.at) + "\n";
  return out;
}

// The DATA section: CRLF line ends, lines within the limit, dot-stuffed (RFC 5321 4.5.2), and
// the final "." line.
std::string smtp_data(const std::string& headers, const std::string& body) {
  std::string out;
  const auto add_line = [&out](const std::string& line) {
    if (line.starts_with(".")) out += '.';
    out += line + "\r\n";
  };
  out += headers;  // already CRLF and ASCII
  out += "\r\n";
  std::size_t from = 0;
  while (from <= body.size()) {
    std::size_t end = body.find('\n', from);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(from, end - from);
    if (line.ends_with("\r")) line.pop_back();
    // Agent-controlled text (a summary, a plugin's output) may hold a bare CR, a NUL or other
    // controls: none of them may reach DATA (RFC 5321 2.3.8, 4.1.1.4); a tab may stay.
    std::erase_if(line, [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
    if (end == body.size() && line.empty()) break;  // the body ended with its last line break
    for (std::size_t at = 0;;) {
      const std::size_t cut = utf8_cut(line, at, kMaxLine);
      add_line(line.substr(at, cut - at));
      at = cut;
      if (at >= line.size()) break;
    }
    from = end + 1;
  }
  out += ".\r\n";
  return out;
}

struct Reply {
  int code = 0;
  std::vector<std::string> lines;
  std::string text() const {
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : " ") + l;
    return out;
  }
  bool offers(std::string_view extension) const {
    for (const auto& l : lines)
      if (upper(l.substr(0, l.find(' '))) == extension) return true;
    return false;
  }
};

// One SMTP dialogue over a connected stream whose deadline is set.
class Dialogue {
 public:
  Dialogue(beast::tcp_stream& stream, std::string where, std::chrono::milliseconds timeout)
      : stream_(stream), where_(std::move(where)), timeout_(timeout) {}

  asio::awaitable<Reply> read() {
    Reply r;
    for (;;) {
      error_code ec;
      const std::size_t n =
          co_await asio::async_read_until(stream_, asio::dynamic_buffer(buffer_, kMaxReply), "\n",
                                          redirect_error(use_awaitable, ec));
      if (ec == asio::error::not_found)
        fail("a reply line longer than " + std::to_string(kMaxReply));
      if (ec) fail(describe(ec, timeout_));
      std::string line = buffer_.substr(0, n - 1);
      buffer_.erase(0, n);
      if (line.ends_with("\r")) line.pop_back();
      // "250-first line", ..., "250 last line" (RFC 5321 4.2.1).
      if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
          !std::isdigit(static_cast<unsigned char>(line[1])) ||
          !std::isdigit(static_cast<unsigned char>(line[2])) ||
          (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
        fail("unreadable reply '" + one_line(line.substr(0, 80)) + "'");
      const int code = std::stoi(line.substr(0, 3));
      if (r.code != 0 && code != r.code) fail("reply code changed within one reply");
      r.code = code;
      r.lines.push_back(line.size() > 4 ? line.substr(4) : "");
      if (line.size() == 3 || line[3] == ' ') co_return r;
    }
  }

  /// read(), throwing unless the reply is `ok`.
  asio::awaitable<Reply> read(int ok) {
    Reply r = co_await read();
    expect(r, ok);
    co_return r;
  }

  asio::awaitable<Reply> command(const std::string& line) {
    step_ = line;
    co_await send(line + "\r\n");
    co_return co_await read();
  }

  /// command(), throwing unless the reply is `ok` (or `also_ok`).
  asio::awaitable<Reply> command(const std::string& line, int ok, int also_ok = 0) {
    Reply r = co_await command(line);
    expect(r, ok, also_ok);
    co_return r;
  }

  asio::awaitable<void> send(const std::string& data) {
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(data), redirect_error(use_awaitable, ec));
    if (ec) fail(describe(ec, timeout_));
  }

  /// Throws unless `r` has code `ok` (or `also_ok`), with the server's own words.
  void expect(const Reply& r, int ok, int also_ok = 0) const {
    if (r.code == ok || (also_ok != 0 && r.code == also_ok)) return;
    fail("SMTP " + std::to_string(r.code) + " " + r.text());
  }

  /// QUIT and its reply, errors ignored: the relay has the message already, and a failure here
  /// must not make the outbox send it again.
  asio::awaitable<void> quit() {
    static const std::string line = "QUIT\r\n";
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(line), redirect_error(use_awaitable, ec));
    if (!ec)
      co_await asio::async_read_until(stream_, asio::dynamic_buffer(buffer_, kMaxReply), "\n",
                                      redirect_error(use_awaitable, ec));
  }

  void set_step(std::string step) { step_ = std::move(step); }

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("smtp " + where_ + " (" + step_ + "): " + why);
  }

 private:
  beast::tcp_stream& stream_;
  std::string where_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::string step_ = "greeting";
};

// What we call ourselves in EHLO: the host name if it is a plausible domain, else an address
// literal relays accept.
std::string hello_name() {
  error_code ec;
  std::string name = asio::ip::host_name(ec);
  const bool ok =
      !ec && !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '-' || ch == '.';
      });
  return ok ? name : "[127.0.0.1]";
}

class Smtp final : public Notifier {
 public:
  explicit Smtp(const NotifierConfig& c) : Notifier(c), server_(server(c.smtp_server)) {}

  asio::awaitable<void> deliver(const Notification& n) override {
    const auto& c = config();
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    co_await connect(stream, server_, std::chrono::steady_clock::now() + c.timeout, c.timeout);
    co_await send(stream, message(n));
    error_code ec;
    stream.socket().close(ec);
  }

 private:
  asio::awaitable<void> send(beast::tcp_stream& stream, const std::string& message) {
    const auto& c = config();
    Dialogue d(stream, server_.text(), c.timeout);
    co_await d.read(220);

    const std::string me = hello_name();
    Reply hello = co_await d.command("EHLO " + me);
    if (hello.code / 100 == 5) {  // an RFC 821 server: no extensions
      hello = co_await d.command("HELO " + me);
      hello.lines.clear();
    }
    d.expect(hello, 250);
    const std::string body_type = hello.offers("8BITMIME") ? " BODY=8BITMIME" : "";
    co_await d.command("MAIL FROM:<" + c.from + ">" + body_type, 250);
    for (const auto& to : c.to) co_await d.command("RCPT TO:<" + to + ">", 250, 251);
    co_await d.command("DATA", 354);
    d.set_step("message");
    co_await d.send(message);
    co_await d.read(250);
    co_await d.quit();
  }

  static HostPort server(const std::string& text) {
    std::string why;
    auto hp = parse_host_port(text, "25", why);
    if (!hp) throw std::runtime_error("smtp server " + text + ": " + why);
    return *hp;
  }

  std::string message(const Notification& n) const {
    const auto& c = config();
    std::string to;
    for (const auto& a : c.to) to += (to.empty() ? "" : ",\r\n ") + a;
    std::string h;
    h += "From: " + c.from + "\r\n";
    h += "To: " + to + "\r\n";
    h += "Subject: " + header_text(subject(n)) + "\r\n";
    h += "Date: " + mail_date(std::time(nullptr)) + "\r\n";
    // Stable across retries, so that a copy the relay got twice is recognisable.
    h += "Message-ID: <" + std::to_string(n.id) + "." + one_line(field(n.ticket, "id")) +
         "@dozor>\r\n";
    h += "MIME-Version: 1.0\r\n";
    h += "Content-Type: text/plain; charset=utf-8\r\n";
    h += "Content-Transfer-Encoding: 8bit\r\n";
    // RFC 3834: no vacation replies to the duty mailbox's notifications.
    h += "Auto-Submitted: auto-generated\r\n";
    h += "X-Dozor-Ticket: " + one_line(field(n.ticket, "id")) + "\r\n";
    h += "X-Dozor-Event: " + one_line(n.event) + "\r\n";
    return smtp_data(h, text_body(n));
  }

  HostPort server_;
};

}  // namespace

std::unique_ptr<Notifier> make_smtp(const NotifierConfig& config) {
  return std::make_unique<Smtp>(config);
}

}  // namespace dozor::collector::notify
