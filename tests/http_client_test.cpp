#include "net/client.hpp"

#include <future>
#include <optional>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tests/eventually.hpp"
#include "tests/fake_receiver.hpp"
#include "tests/redis_server.hpp"

using namespace bt;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace ssl = asio::ssl;

namespace {

net::inbound_response send_sync(net::http_client& client, net::outbound_request req,
                                std::chrono::milliseconds timeout = 2s) {
  std::promise<net::inbound_response> answer;
  client.send(std::move(req), timeout, [&](net::inbound_response r) { answer.set_value(std::move(r)); });
  return answer.get_future().get();
}

/// A self-signed certificate for 127.0.0.1, made in memory: no trust store knows it.
struct self_signed {
  std::string cert_pem, key_pem;
  self_signed() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    auto* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, cert); });
    key_pem = pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  template <class F>
  static std::string pem(F write) {
    BIO* b = BIO_new(BIO_s_mem());
    write(b);
    char* data = nullptr;
    auto n = BIO_get_mem_data(b, &data);
    std::string out{data, static_cast<size_t>(n)};
    BIO_free(b);
    return out;
  }
};

} // namespace

TEST(http_client, parses_urls_and_knows_loopback) {
  auto u = net::parse_url("https://hooks.example.com/a/b?c=d");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/a/b?c=d");
  auto v6 = net::parse_url("http://[::1]:8080");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "8080");
  EXPECT_EQ(v6->target, "/");
  EXPECT_FALSE(net::parse_url("ftp://x/"));
  EXPECT_FALSE(net::parse_url("https://user:pw@x/"));
  EXPECT_FALSE(net::parse_url("https://x:99999999/"));
  EXPECT_TRUE(net::is_loopback_host("127.0.0.2"));
  EXPECT_TRUE(net::is_loopback_host("localhost"));
  EXPECT_FALSE(net::is_loopback_host("10.0.0.1"));
  EXPECT_EQ(net::percent_encode("a-z_0.9~/b c?é"), "a-z_0.9~%2Fb%20c%3F%C3%A9");
  EXPECT_EQ(net::percent_encode("public/a b", "/"), "public/a%20b");
}

TEST(http_client, posts_and_reads_the_answer_with_retry_after) {
  test::fake_receiver receiver{test::redis_server::free_port(),
                               [](const test::fake_receiver::request&, std::size_t) {
                                 return test::fake_receiver::answer_t{503, "busy", {{"Retry-After", "3"}}};
                               }};
  net::http_client client;
  auto r = send_sync(client, {"POST", "http://127.0.0.1:" + std::to_string(receiver.port()) + "/x",
                              {{"X-Test", "1"}}, "hello"});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "busy");
  EXPECT_EQ(r.retry_after, "3");
  auto seen = receiver.requests().at(0);
  EXPECT_EQ(seen.target, "/x");
  EXPECT_EQ(seen.body, "hello");
  EXPECT_EQ(seen.headers["X-Test"], "1");
}

TEST(http_client, a_closed_port_and_a_silent_server_are_errors_not_hangs) {
  net::http_client client;
  auto refused = send_sync(client, {"POST", "http://127.0.0.1:" +
                                              std::to_string(test::redis_server::free_port()) + "/"});
  EXPECT_EQ(refused.status, 0);
  EXPECT_NE(refused.error.find("connect"), std::string::npos) << refused.error;
  // Accepts, never answers.
  asio::io_context ioc;
  asio::ip::tcp::acceptor silent{ioc, {asio::ip::make_address("127.0.0.1"), 0}};
  auto t0 = std::chrono::steady_clock::now();
  auto r = send_sync(client, {"POST", "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/"},
                     300ms);
  EXPECT_EQ(r.status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(http_client, refuses_a_certificate_no_trusted_authority_signed) {
  self_signed pair;
  ssl::context server_tls{ssl::context::tls_server};
  server_tls.use_certificate(asio::buffer(pair.cert_pem), ssl::context::pem);
  server_tls.use_private_key(asio::buffer(pair.key_pem), ssl::context::pem);
  asio::io_context ioc;
  asio::ip::tcp::acceptor acceptor{ioc, {asio::ip::make_address("127.0.0.1"), 0}};
  auto port = acceptor.local_endpoint().port();
  std::atomic<bool> served_request{false};
  std::thread server{[&] {
    boost::system::error_code ec;
    asio::ip::tcp::socket socket{ioc};
    acceptor.accept(socket, ec);
    boost::beast::ssl_stream<asio::ip::tcp::socket> stream{std::move(socket), server_tls};
    stream.handshake(ssl::stream_base::server, ec);
    if (ec)
      return;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> req;
    boost::beast::http::read(stream, buffer, req, ec);
    served_request = !ec;
  }};
  net::http_client client;
  auto r = send_sync(client, {"POST", "https://127.0.0.1:" + std::to_string(port) + "/hook", {}, "secret"});
  server.join();
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("TLS handshake"), std::string::npos) << r.error;
  EXPECT_FALSE(served_request) << "nothing may be sent to an unverified peer";
}

namespace {

using then = test::fake_receiver::answer_t::then;

std::string url_of(const test::fake_receiver& r) {
  return "http://127.0.0.1:" + std::to_string(r.port()) + "/hook";
}

/// A receiver that keeps connections alive and answers 200; request `n` (every
/// request when `n` is none) ends its connection as `after` says.
test::fake_receiver keep_alive_receiver(then after = then::as_configured,
                                        std::optional<std::size_t> n = std::nullopt) {
  return test::fake_receiver{test::redis_server::free_port(),
                             [=](const auto&, std::size_t i) {
                               test::fake_receiver::answer_t a;
                               if (!n || *n == i)
                                 a.after = after;
                               return a;
                             },
                             true};
}

} // namespace

TEST(http_client, keeps_a_connection_alive_and_sends_the_next_request_on_it) {
  auto keeps = keep_alive_receiver();
  test::fake_receiver closes{test::redis_server::free_port(),
                             [](const auto&, std::size_t) { return test::fake_receiver::answer_t{}; }};
  net::http_client client;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(send_sync(client, {"POST", url_of(keeps), {}, std::to_string(i)}).status, 200);
    EXPECT_EQ(send_sync(client, {"POST", url_of(closes), {}, std::to_string(i)}).status, 200);
  }
  EXPECT_EQ(keeps.count(), 5u);
  EXPECT_EQ(keeps.connections(), 1u);
  EXPECT_EQ(keeps.requests().at(4).body, "4");
  // A server that says "Connection: close" gets a new connection each time.
  EXPECT_EQ(closes.count(), 5u);
  EXPECT_EQ(closes.connections(), 5u);
}

TEST(http_client, concurrent_requests_open_no_more_connections_than_are_in_flight) {
  auto receiver = keep_alive_receiver();
  net::http_client client;
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<net::inbound_response>> answers;
    for (int i = 0; i < 8; ++i) {
      auto answer = std::make_shared<std::promise<net::inbound_response>>();
      answers.push_back(answer->get_future());
      client.send({"POST", url_of(receiver), {}, "x"}, 2s,
                  [answer](net::inbound_response r) { answer->set_value(std::move(r)); });
    }
    for (auto& a : answers)
      EXPECT_EQ(a.get().status, 200);
  }
  EXPECT_EQ(receiver.count(), 16u);
  EXPECT_LE(receiver.connections(), 8u);
}

TEST(http_client, a_kept_connection_the_server_closed_is_not_used_again) {
  // Says keep-alive, then closes: its idle timeout was short.
  auto receiver = keep_alive_receiver(then::close_unannounced, 0);
  net::http_client client;
  EXPECT_EQ(send_sync(client, {"POST", url_of(receiver), {}, "first"}).status, 200);
  ASSERT_TRUE(test::eventually([&] { return receiver.closed_connections() == 1; }));
  auto r = send_sync(client, {"POST", url_of(receiver), {}, "second"});
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(receiver.count(), 2u) << "each request was sent once";
  EXPECT_EQ(receiver.connections(), 2u);
}

TEST(http_client, a_request_a_reused_connection_loses_goes_once_more_on_a_new_one) {
  // The server closes as the second request arrives.
  auto receiver = keep_alive_receiver(then::drop_unanswered, 1);
  net::http_client client;
  EXPECT_EQ(send_sync(client, {"POST", url_of(receiver), {}, "first"}).status, 200);
  auto r = send_sync(client, {"POST", url_of(receiver), {}, "second"});
  EXPECT_EQ(r.status, 200) << r.error;
  ASSERT_EQ(receiver.count(), 3u);
  EXPECT_EQ(receiver.requests().at(2).body, "second");
  EXPECT_EQ(receiver.connections(), 2u);
}

TEST(http_client, a_request_a_new_connection_loses_is_an_error_not_sent_again) {
  auto receiver = keep_alive_receiver(then::drop_unanswered);
  net::http_client client;
  auto r = send_sync(client, {"POST", url_of(receiver), {}, "once"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("read"), std::string::npos) << r.error;
  EXPECT_EQ(receiver.count(), 1u);
}

TEST(http_client, an_idle_connection_is_closed_after_the_idle_timeout) {
  auto receiver = keep_alive_receiver();
  net::http_client client{{std::chrono::milliseconds{100}, 32}};
  EXPECT_EQ(send_sync(client, {"POST", url_of(receiver), {}, "x"}).status, 200);
  EXPECT_TRUE(test::eventually([&] { return receiver.closed_connections() == 1; }, 5s));
}
