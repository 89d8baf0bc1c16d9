#pragma once

#include <optional>
#include <string>

#include <simdjson.h>

namespace bt::sources {

/// The path of the first key that appears twice in one object of `doc` (`build.env.CI`,
/// `jobs[2].name`), or nothing. JSON parsers disagree on which of two equal keys wins
/// (simdjson finds the first, most others keep the last), so a payload that has one
/// could mean one thing to its sender and another here: sources refuse it.
std::optional<std::string> duplicate_key(const simdjson::dom::element& doc);

} // namespace bt::sources
