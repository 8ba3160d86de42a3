#pragma once

// The notifier types make_notifier builds, and how they read a ticket as the API shows it.

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dozor/collector/notify.h"

namespace dozor::collector::notify {

std::unique_ptr<Notifier> make_webhook(const NotifierConfig& config);
std::unique_ptr<Notifier> make_alertmanager(const NotifierConfig& config);
std::unique_ptr<Notifier> make_smtp(const NotifierConfig& config);

/// A ticket field as text: strings as they are, numbers spelt out; "" when absent or null.
std::string field(const nlohmann::json& ticket, const char* key);

/// The ticket's details as text: a string as it is, structured details as indented JSON.
std::string details(const nlohmann::json& ticket);

/// A timestamp field as RFC 3339: the API's own string, or unix seconds formatted; nullopt when
/// absent or null.
std::optional<std::string> rfc3339_field(const nlohmann::json& ticket, const char* key);

}  // namespace dozor::collector::notify
