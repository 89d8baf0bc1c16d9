#include "model/time.hpp"

#include <cstdio>

namespace bt::model {
namespace {

/// Reads exactly `n` digits at `pos`, advancing it.
bool digits(std::string_view s, size_t& pos, int n, int& out) {
  if (pos + n > s.size())
    return false;
  out = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool expect(std::string_view s, size_t& pos, char c) {
  if (pos < s.size() && s[pos] == c) {
    ++pos;
    return true;
  }
  return false;
}

} // namespace

std::optional<timestamp> parse_time(std::string_view s) {
  using namespace std::chrono;
  size_t pos = 0;
  int y, mo, d, h, mi, sec;
  if (!digits(s, pos, 4, y) || !expect(s, pos, '-') || !digits(s, pos, 2, mo)
      || !expect(s, pos, '-') || !digits(s, pos, 2, d))
    return std::nullopt;
  if (!(expect(s, pos, 'T') || expect(s, pos, 't') || expect(s, pos, ' ')))
    return std::nullopt;
  if (!digits(s, pos, 2, h) || !expect(s, pos, ':') || !digits(s, pos, 2, mi)
      || !expect(s, pos, ':') || !digits(s, pos, 2, sec))
    return std::nullopt;
  int millis = 0;
  if (expect(s, pos, '.')) {
    int scale = 100, seen = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
      ++seen;
    }
    if (seen == 0)
      return std::nullopt;
  }
  auto date = year{y} / month{static_cast<unsigned>(mo)} / day{static_cast<unsigned>(d)};
  if (!date.ok() || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  minutes offset{0};
  std::string_view rest = s.substr(pos);
  if (rest == "Z" || rest == "z" || rest == " UTC") {
    // UTC.
  } else if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
    size_t p = 1;
    int oh, om;
    if (!digits(rest, p, 2, oh) || !expect(rest, p, ':') || !digits(rest, p, 2, om)
        || p != rest.size())
      return std::nullopt;
    offset = hours{oh} + minutes{om};
    if (rest[0] == '-')
      offset = -offset;
  } else {
    return std::nullopt;
  }
  auto t = sys_days{date} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{millis};
  return time_point_cast<milliseconds>(t - offset);
}

std::string format_time(timestamp t) {
  using namespace std::chrono;
  auto day_point = floor<days>(t);
  year_month_day ymd{day_point};
  hh_mm_ss hms{t - day_point};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

} // namespace bt::model
