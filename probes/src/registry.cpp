#include "dozor/probes/registry.h"

#include <vector>

#include "bas/bas.h"
#include "cert/cert.h"
#include "command/command.h"
#include "disk/disk.h"
#include "file/file.h"
#include "host/host.h"
#include "http/http.h"
#include "log/log.h"
#include "modbus/modbus.h"
#include "postgres/postgres.h"
#include "process/process.h"
#include "service/service.h"
#include "tcp/tcp.h"

namespace dozor::probes {

std::span<const ProbeType> probe_types() {
  // Adding a probe: its folder, and one line here.
  static const ProbeType kTypes[] = {
      tcp::probe_type(),     http::probe_type(),     disk::probe_type(), command::probe_type(),
      service::probe_type(), file::probe_type(),     log::probe_type(),  bas::probe_type(),
      modbus::probe_type(),  postgres::probe_type(), cert::probe_type(), process::probe_type(),
      host::probe_type(),
  };
  return kTypes;
}

const ProbeType* find_probe_type(std::string_view name) {
  for (const auto& t : probe_types())
    if (t.name == name) return &t;
  return nullptr;
}

std::span<const OptionSpec> common_probe_options() {
  static constexpr OptionSpec kCommon[] = {
      {"name", OptionKind::string, "", true, "unique name of this check, e.g. erp-port"},
      {"type", OptionKind::string, "", true, "probe type"},
      {"interval", OptionKind::duration, "30s", false, "time between runs"},
      {"timeout", OptionKind::duration, "", false,
       "a run taking longer fails; default 5s (bas: 10s) or interval"},
      {"labels", OptionKind::string_map, "", false, "extra labels sent with every result"},
      {"confirm", OptionKind::boolean, "true", false,
       "a result worse than the one before is checked again, up to twice 1s apart, before it "
       "is sent"},
  };
  return kCommon;
}

std::optional<ProbeSpec> read_probe(const YAML::Node& node, const std::string& file,
                                    const std::string& path, std::vector<ConfigError>& errors) {
  const int line = node.Mark().line + 1;
  if (!node.IsMap()) {
    errors.push_back({file, line, path, "expected a mapping with name and type"});
    return std::nullopt;
  }
  const YAML::Node type_node = node["type"];
  if (!type_node || !type_node.IsScalar()) {
    errors.push_back({file, line, path + ".type", "missing required key"});
    return std::nullopt;
  }
  const std::string type = type_node.Scalar();
  const ProbeType* pt = find_probe_type(type);
  if (!pt) {
    std::string known;
    for (const auto& t : probe_types()) known += (known.empty() ? "" : ", ") + std::string(t.name);
    errors.push_back({file, type_node.Mark().line + 1, path + ".type",
                      "unknown probe type '" + type + "'; known: " + known});
    return std::nullopt;
  }

  std::vector<OptionSpec> specs(common_probe_options().begin(), common_probe_options().end());
  specs.insert(specs.end(), pt->options.begin(), pt->options.end());
  Options opts = read_options(node, specs, file, path, errors);
  if (!opts.ok()) return std::nullopt;

  ProbeSpec spec;
  spec.name = opts.string("name");
  spec.type = type;
  spec.interval = opts.duration("interval");
  spec.timeout =
      opts.has("timeout") ? opts.duration("timeout") : std::min(pt->default_timeout, spec.interval);
  spec.labels = opts.string_map("labels");
  spec.confirm = opts.boolean("confirm");
  if (spec.name.empty()) opts.error("name", "must not be empty");
  if (spec.interval < std::chrono::milliseconds(100))
    opts.error("interval", "must be at least 100ms");
  if (spec.timeout <= std::chrono::milliseconds(0)) opts.error("timeout", "must be positive");
  if (spec.timeout > spec.interval) opts.error("timeout", "must not exceed interval");
  auto probe = pt->make(opts);
  if (!opts.ok() || !probe) return std::nullopt;
  spec.probe = std::move(probe);
  return spec;
}

}  // namespace dozor::probes
