#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/event.hpp"

namespace bt::model {

/// AMQP topic matching (RabbitMQ's semantics, SPEC §8). A routing key is a list of
/// words separated by `.`; a word may be empty (`a..b` has three words) and the empty
/// key has none. In a binding pattern, a word that is exactly `*` matches one word and
/// one that is exactly `#` matches zero or more; every other word matches itself.
bool topic_matches(std::string_view pattern, std::string_view routing_key);

/// Why `pattern` is refused as a subscriber's binding, or nothing when it is good.
/// AMQP takes `a*` or `#b` as plain words; here `*` and `#` may only be whole words,
/// since a key that holds them is never published and a pattern that does is a typo.
/// At most 255 bytes of printable ASCII, as AMQP's routing keys.
std::optional<std::string> binding_problem(std::string_view pattern);

/// The routing key of a publication about build `key`: `<source>.<pipeline>.<last>`,
/// a dot inside the source or pipeline becoming `_`, so the key always has three words.
std::string build_routing_key(const build_key& key, std::string_view last);

} // namespace bt::model
