#include "storm/load.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace bt::storm {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

/// A request to send, and where it is in the workload (for its build.finished keys).
struct item {
  const std::string* request;
  std::size_t index; ///< in w.requests; npos for the afterwards' requests
  std::size_t order; ///< its place in the open-loop schedule
};

/// What every connection of one load shares (one thread runs them all).
struct shared_state {
  const workload& w;
  const load_options& o;
  tcp::resolver::results_type endpoints;
  steady::time_point start;
  load_result result;
  std::size_t total = 0;
  std::size_t running = 0; ///< connections not yet through their share
};

double since(steady::time_point start, steady::time_point t) {
  return std::chrono::duration<double>(t - start).count();
}

/// One keep-alive connection sending its share of requests, in order.
class connection : public std::enable_shared_from_this<connection> {
public:
  connection(asio::io_context& ioc, shared_state& s, std::vector<item> items)
    : stream_{ioc}, timer_{ioc}, s_{s}, items_{std::move(items)} {}

  void start() { do_connect(); }

private:
  void do_connect() {
    stream_.expires_after(s_.o.timeout);
    stream_.async_connect(s_.endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec)
        return self->on_failure("connect: " + ec.message());
      beast::error_code ignored;
      self->stream_.socket().set_option(tcp::no_delay(true), ignored);
      self->do_wait();
    });
  }

  /// Open-loop: waits for the request's intended send time; closed-loop: sends now.
  void do_wait() {
    if (i_ == items_.size()) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      --s_.running;
      return;
    }
    if (s_.o.rate <= 0)
      return do_send(steady::now());
    auto intended = s_.start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(
                                 static_cast<double>(items_[i_].order) / s_.o.rate));
    if (steady::now() >= intended)
      return do_send(intended); // behind schedule: the wait so far is part of its latency
    timer_.expires_at(intended);
    timer_.async_wait([self = shared_from_this(), intended](beast::error_code) { self->do_send(intended); });
  }

  void do_send(steady::time_point measured_from) {
    measured_from_ = s_.o.rate > 0 ? measured_from : steady::now();
    stream_.expires_after(s_.o.timeout);
    asio::async_write(stream_, asio::buffer(*items_[i_].request),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec)
                          return self->on_failure("write: " + ec.message());
                        self->parser_.emplace();
                        self->parser_->body_limit(16 * 1024 * 1024);
                        http::async_read(self->stream_, self->buffer_, *self->parser_,
                                         [self](beast::error_code ec, std::size_t) { self->on_read(ec); });
                      });
  }

  void on_read(beast::error_code ec) {
    if (ec)
      return on_failure("read: " + ec.message());
    auto now = steady::now();
    auto status = parser_->get().result_int();
    bool ok = status == 202 || (s_.o.commands && (status == 200 || status == 409));
    record(now, ok, static_cast<int>(status));
    if (!ok && s_.result.first_error.empty())
      s_.result.first_error = "HTTP " + std::to_string(status) + " " + parser_->get().body().substr(0, 300);
    if (ok)
      if (auto f = s_.w.finish_of.find(items_[i_].index); f != s_.w.finish_of.end())
        for (auto& key : f->second)
          s_.result.finished_at.try_emplace(key, now);
    bool keep_alive = parser_->get().keep_alive();
    ++i_;
    if (!keep_alive) {
      reconnect();
      return;
    }
    do_wait();
  }

  /// The request in hand failed: it counts as an error, and the next goes on a new
  /// connection (the target may have closed this one).
  void on_failure(const std::string& what) {
    if (i_ < items_.size()) {
      if (s_.result.first_error.empty())
        s_.result.first_error = what;
      record(steady::now(), false, 0);
      ++i_;
    }
    reconnect();
  }

  void record(steady::time_point now, bool ok, int status) {
    s_.result.samples.push_back(
      {since(s_.start, now), std::chrono::duration<double>(now - measured_from_).count(), ok});
    ++s_.result.statuses[status];
    s_.result.errors += !ok;
  }

  void reconnect() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    buffer_.clear();
    if (i_ == items_.size()) {
      --s_.running;
      return;
    }
    measured_from_ = steady::now();
    do_connect();
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  shared_state& s_;
  std::vector<item> items_;
  std::size_t i_ = 0;
  /// When the request in hand was sent (closed-loop) or meant to be (open-loop); the
  /// start of a reconnection before it is sent.
  steady::time_point measured_from_ = steady::now();
};

/// Reports progress every 250 ms until every connection is through.
class progress_ticker : public std::enable_shared_from_this<progress_ticker> {
public:
  progress_ticker(asio::io_context& ioc, shared_state& s) : timer_{ioc}, s_{s} {}
  void start() { do_tick(); }

private:
  void do_tick() {
    timer_.expires_after(std::chrono::milliseconds{250});
    timer_.async_wait([self = shared_from_this()](beast::error_code) { self->on_tick(); });
  }
  void on_tick() {
    auto& samples = s_.result.samples;
    std::vector<double> window;
    for (auto i = seen_; i < samples.size(); ++i)
      window.push_back(samples[i].latency);
    std::sort(window.begin(), window.end());
    auto now = steady::now();
    progress p;
    p.elapsed = since(s_.start, now);
    p.done = samples.size();
    p.total = s_.total;
    p.errors = s_.result.errors;
    p.rate = static_cast<double>(window.size()) / std::max(1e-3, since(last_, now));
    p.p50 = quantile(window, 0.5);
    p.p99 = quantile(window, 0.99);
    s_.o.on_progress(p);
    seen_ = samples.size();
    last_ = now;
    if (s_.running > 0)
      do_tick();
  }

  asio::steady_timer timer_;
  shared_state& s_;
  std::size_t seen_ = 0;
  steady::time_point last_ = steady::now();
};

load_result run(const workload& w, const load_options& o, std::vector<std::vector<item>> shares,
                std::size_t events) {
  asio::io_context ioc{1};
  shared_state s{w, o, {}, {}, {}, 0, 0};
  try {
    s.endpoints = tcp::resolver{ioc}.resolve(o.target.host, std::to_string(o.target.port));
  } catch (const std::exception& e) {
    throw std::runtime_error{"cannot resolve " + o.target.host + ": " + e.what()};
  }
  for (auto& share : shares)
    s.total += share.size();
  s.result.samples.reserve(s.total);
  s.start = steady::now();
  for (auto& share : shares)
    if (!share.empty()) {
      ++s.running;
      std::make_shared<connection>(ioc, s, std::move(share))->start();
    }
  if (o.on_progress && s.running > 0)
    std::make_shared<progress_ticker>(ioc, s)->start();
  ioc.run();
  s.result.seconds = since(s.start, steady::now());
  s.result.events = events;
  return std::move(s.result);
}

} // namespace

load_result send_load(const workload& w, const load_options& o) {
  std::vector<std::vector<item>> shares(static_cast<std::size_t>(std::max(1, o.connections)));
  for (std::size_t i = 0; i < w.requests.size(); ++i)
    shares[i % shares.size()].push_back({&w.requests[i], i, i});
  return run(w, o, std::move(shares), w.events);
}

load_result send_afterwards(const workload& w, const load_options& o) {
  auto closed = o;
  closed.rate = 0;
  closed.commands = true;
  std::vector<std::vector<item>> shares(static_cast<std::size_t>(std::max(1, o.connections)));
  std::size_t n = 0;
  for (std::size_t b = 0; b < w.afterwards.size(); ++b)
    for (auto& r : w.afterwards[b])
      shares[b % shares.size()].push_back({&r, static_cast<std::size_t>(-1), n++});
  return run(w, closed, std::move(shares), n);
}

std::vector<double> sorted_latencies(const load_result& r) {
  std::vector<double> out;
  out.reserve(r.samples.size());
  for (auto& s : r.samples)
    out.push_back(s.latency);
  std::sort(out.begin(), out.end());
  return out;
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty())
    return 0;
  auto at = static_cast<std::size_t>(q * static_cast<double>(sorted.size()));
  return sorted[std::min(sorted.size() - 1, at)];
}

} // namespace bt::storm
