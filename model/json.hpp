#pragma once

#include <nlohmann/json_fwd.hpp>

#include "model/build.hpp"
#include "model/index.hpp"
#include "model/notice.hpp"
#include "model/streak.hpp"

namespace bt::model {

/// The build document served by `GET /api/v1/builds/{key}`, as JSON text. Written
/// directly, without a DOM: every webhook notification carries one.
std::string build_text(const build& b);
/// Appends `build_text(b)` to `out`.
void append_build(std::string& out, const build& b);
/// The build document as a tree (parsed from `build_text`), for body templates.
nlohmann::json to_json(const build& b);

/// The short form used in build lists and the `builds` feed, as JSON text. Written
/// directly, without a DOM: the feed writes one per listing change.
std::string summary_text(const build_summary& s);
/// Appends `summary_text(s)` to `out`: a list is written in one string.
void append_summary(std::string& out, const build_summary& s);

/// Every streak's current state, for `GET /api/v1/streaks`.
nlohmann::json to_json(const streak_book& book);

/// The variables a webhook body template sees (README, "Body templates"): `build`
/// (the build as the API shows it), `kind`, `revision`, `sink`, `delivery`,
/// `statistics`, and `released_by` when the notice waited for statistics.
nlohmann::json notice_variables(const notice& n, const std::string& sink,
                                const std::string& delivery);

/// A webhook notification's default body (README, "Webhooks"): `build`, `delivery`,
/// `kind`, `revision`, `sink`; `job` for a job notice; `released_by` and `statistics`
/// when the notice waited for statistics. Written directly, as `notice_variables`
/// would be by `to_text` had it only those names.
std::string notice_text(const notice& n, const std::string& sink, const std::string& delivery);

/// Serialises without throwing: invalid UTF-8 (which no source should let through)
/// is replaced rather than ending the actor that serialises it.
std::string to_text(const nlohmann::json& doc);

} // namespace bt::model
