#include "command/command.h"

#include <set>

#include "command/perfdata.h"
#include "dozor/protocol/units.h"
#include "src/subprocess.h"

namespace dozor::probes::command {
namespace {

constexpr OptionSpec kOptions[] = {
    {"command", OptionKind::yaml, "", true,
     "the plugin and its arguments, as a list; run without a shell, e.g. "
     "[/usr/lib/nagios/plugins/check_disk, -w, 10%, -c, 5%, -p, /]"},
    {"env", OptionKind::string_map, "", false,
     "environment variables set for the plugin besides the agent's, e.g. {LC_ALL: C}"},
    {"max_output", OptionKind::size, "64KiB", false,
     "output kept from each of stdout and stderr; the rest is read and dropped"},
};

struct Config {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::size_t max_output = 64 * 1024;
};

/// The plugin API's exit codes; anything else (127 from a missing interpreter, a crash) is unknown.
Status status_of_exit(int code) {
  switch (code) {
    case 0:
      return Status::ok;
    case 1:
      return Status::warning;
    case 2:
      return Status::critical;
    default:
      return Status::unknown;
  }
}

std::string quoted(const std::string& arg) {
  if (!arg.empty() && arg.find_first_of(" \t'\"\\$*?") == std::string::npos) return arg;
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class CommandProbe final : public Probe {
 public:
  explicit CommandProbe(Config c) : c_(std::move(c)) {}

  asio::awaitable<Result> run(ProbeContext& ctx) override {
    try {
      ProcessRequest request;
      request.argv = c_.argv;
      request.env = c_.env;
      request.max_output = c_.max_output;
      const ProcessResult p = co_await run_process_on_pool(ctx, std::move(request), last_);
      co_return evaluate(p, ctx.timeout);
    } catch (const std::exception& e) {
      co_return make_result(Status::unknown, std::string("command probe failed: ") + e.what());
    }
  }

  std::string plan() const override {
    std::string s = "runs";
    for (const auto& a : c_.argv) s += " " + quoted(a);
    s += " (no shell)";
    for (const auto& [k, v] : c_.env) s += ", " + k + "=" + quoted(v);
    return s;
  }

 private:
  Result evaluate(const ProcessResult& p, std::chrono::milliseconds timeout) const {
    Result r;
    if (p.timed_out) {
      // error: the rare child that even SIGKILL did not end (stuck in the kernel).
      r = make_result(Status::critical, "timed out after " + format_duration(timeout) +
                                            " (process group killed)" +
                                            (p.error.empty() ? "" : "; " + p.error));
      r.metrics.push_back({"duration_seconds", p.seconds, "s"});
      return r;
    }
    if (!p.error.empty())
      return make_result(Status::unknown, "cannot run " + first_output_line(p.error));

    // A cut-off last line may hold half a number ("time=12" of "time=12.5ms"): drop it.
    std::string_view out = p.out;
    if (p.truncated && out.size() >= c_.max_output)
      out = out.substr(0, out.rfind('\n') == std::string_view::npos ? 0 : out.rfind('\n') + 1);
    const PluginOutput parsed = parse_plugin_output(out);

    std::string text = first_output_line(parsed.summary);
    if (text.empty()) text = first_output_line(p.err);
    auto with_text = [&](std::string head) { return text.empty() ? head : head + ": " + text; };
    if (p.signal != 0) {
      r = make_result(Status::unknown, with_text(describe_end(p)));
    } else if (p.exit_code < 0 || p.exit_code > 3) {
      r = make_result(Status::unknown, with_text("exit code " + std::to_string(p.exit_code)));
    } else {
      r = make_result(status_of_exit(p.exit_code),
                      text.empty() ? "no output (exit code " + std::to_string(p.exit_code) + ")"
                                   : std::move(text));
    }

    // One metric name for every item, the plugin's label as a label (as Telegraf's nagios
    // input tags it): `sum by (label)` works, and no label can clash with our own names. A
    // repeated label gets a suffix.
    std::set<std::string> taken;
    for (const PerfValue& v : parsed.perfdata) {
      const std::string as_written = perfdata_label(v.label);
      std::string label = as_written;
      for (int i = 2; taken.count(label); ++i) label = as_written + "_" + std::to_string(i);
      taken.insert(label);
      r.metrics.push_back({"perfdata", v.value, v.unit, {{"label", std::move(label)}}});
    }
    if (p.signal == 0) r.metrics.push_back({"exit_code", static_cast<double>(p.exit_code), ""});
    r.metrics.push_back({"duration_seconds", p.seconds, "s"});
    return r;
  }

  Config c_;
  std::weak_ptr<BlockingCall<ProcessResult>> last_;
};

std::unique_ptr<Probe> make(const Options& o) {
  Config c;
  const YAML::Node command = o.yaml("command");
  if (command.IsScalar()) {
    o.error("command",
            "expected a list: the program and its arguments, e.g. [check_disk, -w, 10%]; there "
            "is no shell to split a string");
    return nullptr;
  }
  if (!command.IsSequence() || command.size() == 0) {
    o.error("command", "expected a non-empty list: the program and its arguments");
    return nullptr;
  }
  for (const YAML::Node& arg : command) {
    if (!arg.IsScalar()) {
      o.error("command", "every argument must be a plain value, not a list or mapping");
      return nullptr;
    }
    c.argv.push_back(arg.Scalar());
  }
  if (c.argv[0].empty()) o.error("command", "the program must not be empty");

  for (auto& [k, v] : o.string_map("env")) {
    if (k.empty() || k.find('=') != std::string::npos)
      o.error("env", "'" + k + "' is not a variable name");
    c.env.emplace_back(k, v);
  }
  const std::uint64_t max_output = o.size("max_output");
  if (max_output == 0 || max_output > 16 * 1024 * 1024)
    o.error("max_output", "expected a size from 1B to 16MiB");
  c.max_output = static_cast<std::size_t>(max_output);
  return std::make_unique<CommandProbe>(std::move(c));
}

}  // namespace

ProbeType probe_type() {
  return {"command", "a monitoring plugin (Nagios plugin API): exit status, output, perfdata",
          kOptions, &make};
}

}  // namespace dozor::probes::command
