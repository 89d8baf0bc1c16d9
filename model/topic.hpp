#pragma once

#include <optional>
#include <string>
#include <string_view>

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

/// `text` as one word of a routing key: each `.` becomes `_`.
std::string topic_word(std::string text);

} // namespace bt::model
