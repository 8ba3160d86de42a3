#include <algorithm>

#include "dozor/collector/desk.h"

namespace dozor::collector {
namespace {

constexpr OptionSpec kService[] = {
    {"calendar", OptionKind::string, "24x7", false,
     "calendar of sites not listed in `sites`: 24x7 or a name from `calendars`"},
    {"sites", OptionKind::string_map, "", false, "site -> calendar name"},
    {"targets", OptionKind::yaml, "", false,
     "reaction targets in service time: {emergency: 15m, emergency/P1: 5m, task: 8h}"},
};
constexpr OptionSpec kTickets[] = {
    {"reopen_within", OptionKind::duration, "1h", false,
     "a resolved ticket that fails again within this reopens; after it, it closes"},
    {"outage_probes", OptionKind::integer, "3", false,
     "site-wide outage: at least this many probes failing together"},
    {"outage_share", OptionKind::number, "0.5", false,
     "site-wide outage: and more than this share of the site's probes"},
    {"outage_window", OptionKind::duration, "1m", false,
     "site-wide outage: failures that began within this window"},
    {"mass_silence_agents", OptionKind::integer, "5", false,
     "collector unreachable: at least this many agents falling silent together"},
    {"mass_silence_share", OptionKind::number, "0.5", false,
     "collector unreachable: and more than this share of the agents known"},
    {"mass_silence_window", OptionKind::duration, "1m", false,
     "collector unreachable: agents that fell silent within this window of each other"},
};

}  // namespace

DeskConfig parse_desk_config(const YAML::Node& root, const std::string& file,
                             std::vector<ConfigError>& errors) {
  DeskConfig c;
  c.rules = parse_rules(root["rules"], file, errors);
  if (YAML::Node cal = root["calendars"]; cal)
    c.calendars = parse_calendars(cal, file, "calendars", errors);

  auto section = [&](const char* name, std::span<const OptionSpec> specs) {
    YAML::Node n = root[name];
    return read_options(n && !n.IsNull() ? n : YAML::Node(YAML::NodeType::Map), specs, file, name,
                        errors);
  };
  Options service = section("service", kService);
  auto known = [&](const std::string& name) {
    return name == "24x7" || c.calendars.count(name) > 0;
  };
  c.default_calendar = service.string("calendar");
  if (!known(c.default_calendar))
    service.error("calendar",
                  "no calendar named '" + c.default_calendar + "' in `calendars` (or use 24x7)");
  if (service.has("sites")) {
    c.site_calendars = service.string_map("sites");
    for (const auto& [site, name] : c.site_calendars)
      if (!known(name))
        service.error("sites", "site " + site + ": no calendar named '" + name + "'");
  }
  if (YAML::Node targets = service.yaml("targets"); targets && !targets.IsNull())
    c.targets = parse_reaction_targets(targets, file, "service.targets", errors);

  Options tickets = section("tickets", kTickets);
  c.reopen_within = tickets.duration("reopen_within");
  c.outage_probes = static_cast<int>(tickets.integer("outage_probes"));
  if (c.outage_probes < 2) tickets.error("outage_probes", "must be at least 2");
  c.outage_share = tickets.number("outage_share");
  if (c.outage_share < 0 || c.outage_share >= 1)
    tickets.error("outage_share", "expected a share from 0 to below 1, e.g. 0.5");
  c.outage_window = tickets.duration("outage_window");
  c.mass_silence_agents = static_cast<int>(tickets.integer("mass_silence_agents"));
  if (c.mass_silence_agents < 2) tickets.error("mass_silence_agents", "must be at least 2");
  c.mass_silence_share = tickets.number("mass_silence_share");
  if (c.mass_silence_share < 0 || c.mass_silence_share >= 1)
    tickets.error("mass_silence_share", "expected a share from 0 to below 1, e.g. 0.5");
  c.mass_silence_window = tickets.duration("mass_silence_window");

  if (YAML::Node n = root["notifiers"]; n) c.notifiers = parse_notifiers(n, file, errors);
  return c;
}

}  // namespace dozor::collector
