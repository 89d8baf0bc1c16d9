#include <gtest/gtest.h>

#include "store/redis_client.hpp"
#include "tests/redis_server.hpp"

using namespace bt::store;
using namespace std::chrono_literals;

namespace {

std::vector<redis_reply> ok(std::variant<std::vector<redis_reply>, std::string> result) {
  if (auto* why = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << *why;
    return {};
  }
  return std::get<0>(std::move(result));
}

} // namespace

TEST(redis_url, parses_every_part) {
  auto plain = parse_redis_url("redis://localhost");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->host, "localhost");
  EXPECT_EQ(plain->port, 6379);
  EXPECT_EQ(plain->db, 0);
  auto full = parse_redis_url("redis://bt:s3cr:et@10.0.0.5:6380/3");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->user, "bt");
  EXPECT_EQ(full->password, "s3cr:et");
  EXPECT_EQ(full->host, "10.0.0.5");
  EXPECT_EQ(full->port, 6380);
  EXPECT_EQ(full->db, 3);
  auto password_only = parse_redis_url("redis://:pw@127.0.0.1/");
  ASSERT_TRUE(password_only);
  EXPECT_EQ(password_only->user, "");
  EXPECT_EQ(password_only->password, "pw");
  for (auto bad : {"http://localhost", "redis://", "redis://host:port", "redis://host:70000",
                   "redis://host/db", "redis://pw@host"})
    EXPECT_FALSE(parse_redis_url(bad)) << bad;
}

TEST(redis_client, pipelines_many_commands_in_one_call) {
  bt::test::redis_server server;
  redis_client client{*parse_redis_url(server.url()), 1000ms};
  std::vector<redis_command> cmds;
  for (int i = 0; i < 1000; ++i)
    cmds.push_back({"XADD", "journal", "*", "event", "payload-" + std::to_string(i)});
  cmds.push_back({"XLEN", "journal"});
  cmds.push_back({"SET", "k", std::string{"binary\0safe", 11}});
  cmds.push_back({"GET", "k"});
  cmds.push_back({"GET", "missing"});
  cmds.push_back({"NOSUCHCOMMAND"});
  auto replies = ok(client.pipeline(cmds));
  ASSERT_EQ(replies.size(), cmds.size());
  EXPECT_EQ(replies[0].kind, redis_reply::string); // the stream entry id
  EXPECT_EQ(replies[1000].number, 1000);
  EXPECT_EQ(replies[1001].kind, redis_reply::status);
  EXPECT_EQ(replies[1002].text, std::string("binary\0safe", 11));
  EXPECT_EQ(replies[1003].kind, redis_reply::nil);
  EXPECT_EQ(replies[1004].kind, redis_reply::error);
  // The connection is still good after a refused command.
  EXPECT_EQ(ok(client.pipeline({{"PING"}}))[0].text, "PONG");
}

// The client writes the protocol itself: arguments that look like the protocol, empty
// ones, views of other strings and one larger than the text kept between calls all
// arrive as given, and a small pipeline after a large one still works.
TEST(redis_client, arguments_arrive_as_given) {
  bt::test::redis_server server;
  redis_client client{*parse_redis_url(server.url()), 1000ms};
  std::string protocol_like = "a\r\n$3\r\nbcd\r\n*1\r\n";
  std::string large(300 * 1024, 'x');
  large[1234] = '\0';
  std::vector<redis_command_view> views{{"SET", "protocol", protocol_like},
                                        {"SET", "empty", ""},
                                        {"SET", "large", large},
                                        {"MGET", "protocol", "empty", "large"}};
  auto replies = ok(client.pipeline(views));
  ASSERT_EQ(replies.size(), 4u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(replies[i].kind, redis_reply::status) << i;
  auto& values = replies[3].elements;
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0].text, protocol_like);
  EXPECT_EQ(values[1].kind, redis_reply::string);
  EXPECT_EQ(values[1].text, "");
  EXPECT_EQ(values[2].text, large);
  EXPECT_EQ(ok(client.pipeline({{"STRLEN", "large"}}))[0].number, 300 * 1024);
}

// Replies are built by hiredis straight into redis_reply (its reader's object
// functions): arrays inside arrays, nils inside arrays, empty arrays and values
// larger than one read of the socket.
TEST(redis_client, builds_nested_replies_of_every_kind) {
  bt::test::redis_server server;
  redis_client client{*parse_redis_url(server.url()), 1000ms};
  std::string large(3 << 20, 'x');
  large[12345] = '\0';
  auto replies = ok(client.pipeline({{"XADD", "s", "1-1", "a", "b", "c", "d"},
                                     {"SET", "large", large},
                                     {"XRANGE", "s", "-", "+"},
                                     {"MGET", "large", "missing", "large"},
                                     {"XRANGE", "nothing", "-", "+"},
                                     {"EVAL", "return {1, {2, 'three'}, false}", "0"}}));
  ASSERT_EQ(replies.size(), 6u);
  auto& range = replies[2];
  ASSERT_EQ(range.kind, redis_reply::array);
  ASSERT_EQ(range.elements.size(), 1u);
  ASSERT_EQ(range.elements[0].elements.size(), 2u);
  EXPECT_EQ(range.elements[0].elements[0].text, "1-1");
  auto& fields = range.elements[0].elements[1];
  ASSERT_EQ(fields.elements.size(), 4u);
  EXPECT_EQ(fields.elements[3].text, "d");
  auto& values = replies[3];
  ASSERT_EQ(values.elements.size(), 3u);
  EXPECT_EQ(values.elements[0].text, large);
  EXPECT_EQ(values.elements[1].kind, redis_reply::nil);
  EXPECT_EQ(values.elements[2].text, large);
  EXPECT_EQ(replies[4].kind, redis_reply::array);
  EXPECT_TRUE(replies[4].elements.empty());
  auto& mixed = replies[5];
  ASSERT_EQ(mixed.elements.size(), 3u);
  EXPECT_EQ(mixed.elements[0].number, 1);
  ASSERT_EQ(mixed.elements[1].elements.size(), 2u);
  EXPECT_EQ(mixed.elements[1].elements[1].text, "three");
  EXPECT_EQ(mixed.elements[2].kind, redis_reply::nil);
}

TEST(redis_client, selects_the_database) {
  bt::test::redis_server server;
  redis_client db3{*parse_redis_url(server.url() + "/3"), 1000ms};
  ok(db3.pipeline({{"SET", "where", "three"}}));
  redis_client db0{*parse_redis_url(server.url()), 1000ms};
  EXPECT_EQ(ok(db0.pipeline({{"GET", "where"}}))[0].kind, redis_reply::nil);
  EXPECT_EQ(ok(db0.pipeline({{"SELECT", "3"}, {"GET", "where"}}))[1].text, "three");
}

TEST(redis_client, wrong_password_is_an_error_value) {
  bt::test::redis_server server;
  redis_client admin{*parse_redis_url(server.url()), 1000ms};
  ok(admin.pipeline({{"CONFIG", "SET", "requirepass", "right"}}));
  redis_client wrong{*parse_redis_url("redis://:wrong@127.0.0.1:" + std::to_string(server.port())),
                     1000ms};
  auto why = wrong.connect();
  ASSERT_TRUE(why);
  EXPECT_EQ(why->find("wrong"), std::string::npos) << "the password leaked into: " << *why;
  EXPECT_FALSE(wrong.connected());
  redis_client right{*parse_redis_url("redis://:right@127.0.0.1:" + std::to_string(server.port())),
                     1000ms};
  EXPECT_EQ(ok(right.pipeline({{"PING"}}))[0].text, "PONG");
}

TEST(redis_client, outage_fails_calls_and_recovery_reconnects) {
  bt::test::redis_server server;
  redis_client client{*parse_redis_url(server.url()), 500ms};
  ok(client.pipeline({{"SET", "a", "1"}}));
  server.stop();
  auto during = client.pipeline({{"GET", "a"}});
  EXPECT_TRUE(std::holds_alternative<std::string>(during));
  EXPECT_FALSE(client.connected());
  EXPECT_TRUE(client.connect());
  server.start();
  auto after = client.pipeline({{"PING"}});
  ASSERT_TRUE(std::holds_alternative<std::vector<redis_reply>>(after));
  EXPECT_EQ(std::get<0>(after)[0].text, "PONG");
}
