// The simulator's GraphQL parser and the validation of generate parameters.
#include "sim/generate.hpp"
#include "sim/graphql.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

using namespace klingq::sim;
namespace json = boost::json;

namespace {

graphql::Operation parsed(std::string_view query, const json::object& variables = {},
                          std::string_view name = "") {
  auto result = graphql::parse(query, variables, name);
  if (auto* e = std::get_if<graphql::Error>(&result)) FAIL(e->message);
  return std::get<graphql::Operation>(result);
}

std::string error_of(std::string_view query, const json::object& variables = {}, std::string_view name = "") {
  auto result = graphql::parse(query, variables, name);
  REQUIRE(std::holds_alternative<graphql::Error>(result));
  return std::get<graphql::Error>(result).message;
}

InvalidParameter invalid(const ParseResult& r) {
  REQUIRE(std::holds_alternative<InvalidParameter>(r));
  return std::get<InvalidParameter>(r);
}

GenerateParams valid(const ParseResult& r) {
  if (auto* e = std::get_if<InvalidParameter>(&r)) FAIL(e->message);
  return std::get<GenerateParams>(r);
}

}  // namespace

TEST_CASE("the seed's mutation with variables") {
  auto variables = json::parse(R"({"input": {"type": "VIDEO", "provider": "kling",
      "input": {"text": "A serene landscape with mountains and a lake at sunset"},
      "options": {"duration": 5, "aspectRatio": "16:9"}}})").as_object();
  auto op = parsed(
      "mutation Generate($input: GenerateInput!) { generate(input: $input) { id status type provider url metadata creditCost } }",
      variables);
  CHECK(op.kind == "mutation");
  CHECK(op.name == "Generate");
  REQUIRE(op.fields.size() == 1);
  auto& f = op.fields[0];
  CHECK(f.name == "generate");
  CHECK(f.alias == "generate");
  CHECK(f.arguments.at("input") == variables.at("input"));
  REQUIRE(f.selection.size() == 7);
  CHECK(f.selection[6].name == "creditCost");
  auto p = valid(parse_graphql_input(f.arguments.at("input")));
  CHECK(p.prompt == "A serene landscape with mountains and a lake at sunset");
  CHECK(p.duration == 5);
  CHECK(p.quality == "standard");
}

TEST_CASE("inline literal arguments: enums, strings with escapes, numbers, nested objects") {
  auto op = parsed(R"(
    # a comment
    mutation {
      made: generate(input: {type: VIDEO, provider: "kling",
                             input: {text: "a \"quoted\" caf\u00e9 \uD83D\uDE00"},
                             options: {duration: 10, aspectRatio: "9:16", quality: "high",
                                       version: "2.1-master", camera: {pan: -1.5, tilt: [1, 2]}}})
      { id, creditCost }
    })");
  auto& f = op.fields.at(0);
  CHECK(f.alias == "made");
  CHECK(f.name == "generate");
  auto p = valid(parse_graphql_input(f.arguments.at("input")));
  CHECK(p.prompt == "a \"quoted\" caf\xC3\xA9 \xF0\x9F\x98\x80");
  CHECK(p.duration == 10);
  CHECK(p.professional());
  CHECK(p.aspect_ratio == "9:16");
  CHECK(p.options.at("camera").at("pan").as_double() == -1.5);
  CHECK(p.options.at("camera").at("tilt").as_array().size() == 2);
  CHECK_FALSE(p.options.contains("duration"));  // interpreted, not passed through
}

TEST_CASE("queries: job(id), credits, block strings, defaults, fragments, directives") {
  auto op = parsed(R"(query Job($id: ID!) { job(id: $id) { id status url metadata creditCost error } })",
                   json::object{{"id", "abc"}});
  CHECK(op.kind == "query");
  CHECK(op.fields.at(0).arguments.at("id") == "abc");
  CHECK(parsed("{ credits { balance } }").fields.at(0).selection.at(0).name == "balance");
  CHECK(parsed("query { credits { balance } }").fields.at(0).name == "credits");

  auto defaults = parsed(R"(query Q($id: ID = "x1") { job(id: $id) { id } })");
  CHECK(defaults.fields.at(0).arguments.at("id") == "x1");

  auto block = parsed("query { job(id: \"\"\"\n    abc\n  \"\"\") { id } }");
  CHECK(block.fields.at(0).arguments.at("id") == "abc");

  auto fragments = parsed(R"(
    query Q($full: Boolean!) { job(id: "j") { ...Basic ... on Job { url } error @include(if: $full) } }
    fragment Basic on Job { id status @skip(if: true) })",
                          json::object{{"full", false}});
  auto& selection = fragments.fields.at(0).selection;
  REQUIRE(selection.size() == 2);
  CHECK(selection[0].name == "id");
  CHECK(selection[1].name == "url");
}

TEST_CASE("operation selection and variable errors") {
  const char* two = "query A { credits { balance } } query B { job(id: \"x\") { id } }";
  CHECK(error_of(two).find("operation name") != std::string::npos);
  CHECK(parsed(two, {}, "B").fields.at(0).name == "job");
  CHECK(error_of(two, {}, "C").find("Unknown operation") != std::string::npos);
  CHECK(error_of("mutation G($input: GenerateInput!) { generate(input: $input) { id } }")
            .find("\"$input\" of required type \"GenerateInput!\" was not provided") != std::string::npos);
  CHECK(error_of("mutation { generate(input: $input) { id } }").find("not defined") != std::string::npos);
  CHECK(error_of("{ job(id: \"x\") { ...Missing } }").find("Unknown fragment") != std::string::npos);
}

TEST_CASE("syntax errors are errors, never crashes") {
  for (const char* bad : {"", "   ", "mutation {", "{ credits { balance }", "{ job(id: ) { id } }",
                          "{ job(id: \"unterminated) { id } }", "query ($x Int) { credits { balance } }",
                          "{ credits { } }", "{ job(id: 01) { id } }", "%%%", "{ a(b: {c: [1, 2}) }",
                          "{ a(b: \"\\q\") }", "fragment F on Job { id } fragment F on Job { id } { job { ...F } }"}) {
    CAPTURE(bad);
    auto message = error_of(bad);
    CHECK_FALSE(message.empty());
  }
  // Nesting deeper than the parser allows is an error, not a stack overflow.
  std::string deep = "{ a(b: " + std::string(10000, '[') + std::string(10000, ']') + ") }";
  CHECK(error_of(deep).find("nested too deeply") != std::string::npos);
  std::string fields = "{ " + std::string(200, '{');
  CHECK_FALSE(error_of(fields).empty());
}

TEST_CASE("generate validation names the parameter") {
  auto base = json::parse(R"({"type": "VIDEO", "provider": "kling", "input": {"text": "x"},
                              "options": {"duration": 5}})").as_object();
  auto with = [&](auto change) {
    auto copy = base;
    change(copy);
    return parse_graphql_input(copy);
  };
  CHECK(invalid(with([](json::object& o) { o["type"] = "IMAGE"; })).parameter == "type");
  CHECK(invalid(with([](json::object& o) { o["provider"] = "runway"; })).parameter == "provider");
  CHECK(invalid(with([](json::object& o) { o.erase("input"); })).parameter == "input.text");
  CHECK(invalid(with([](json::object& o) { o["input"] = json::object{{"text", ""}}; })).parameter == "input.text");
  CHECK(invalid(with([](json::object& o) { o["input"] = json::object{{"text", "   "}}; })).parameter == "input.text");
  CHECK(invalid(with([](json::object& o) { o["input"] = json::object{{"text", 5}}; })).parameter == "input.text");
  CHECK(invalid(with([](json::object& o) { o["input"] = json::object{{"text", std::string(2501, 'a')}}; }))
            .message.find("2500") != std::string::npos);
  // 2500 characters of 3-byte UTF-8 are fine: the limit counts characters.
  std::string cjk;
  for (int i = 0; i < 2500; ++i) cjk += "\xE5\xB1\xB1";
  valid(with([&](json::object& o) { o["input"] = json::object{{"text", cjk}}; }));
  CHECK(invalid(with([](json::object& o) { o["options"] = json::object{{"duration", 7}}; })).parameter == "duration");
  CHECK(invalid(with([](json::object& o) { o["options"] = json::object{{"duration", "5"}}; })).parameter == "duration");
  CHECK(invalid(with([](json::object& o) { o["options"] = json::object{{"aspectRatio", "4:3"}}; })).parameter ==
        "aspectRatio");
  CHECK(invalid(with([](json::object& o) { o["options"] = json::object{{"version", "3.0"}}; })).parameter ==
        "version");
  CHECK(invalid(with([](json::object& o) { o["options"] = json::object{{"quality", "ultra"}}; })).parameter ==
        "quality");
  CHECK(invalid(with([](json::object& o) { o["options"] = "fast"; })).parameter == "options");
  CHECK(invalid(with([](json::object& o) { o["webhookUrl"] = "ftp://x/y"; })).parameter == "webhookUrl");
  CHECK(invalid(with([](json::object& o) { o["webhookUrl"] = "http://"; })).parameter == "webhookUrl");
  CHECK(invalid(with([](json::object& o) { o["colour"] = "red"; })).parameter == "colour");
  auto p = valid(with([](json::object& o) {
    o["webhookUrl"] = "https://hooks.example.com/kling";
    o["options"] = json::object{{"duration", 10}, {"quality", nullptr}};
  }));
  CHECK(p.webhook_url == "https://hooks.example.com/kling");
  CHECK(p.quality == "standard");  // null is "not given"
  CHECK(p.duration == 10);
}

TEST_CASE("REST body validation and pass-through") {
  auto p = valid(parse_rest_body(json::parse(
      R"({"service": "kling", "prompt": "a fox", "duration": 10, "aspectRatio": "1:1", "version": "1.6",
          "webhookUrl": "http://127.0.0.1:9/hook", "cameraControl": {"type": "simple"}})")));
  CHECK(p.prompt == "a fox");
  CHECK(p.duration == 10);
  CHECK(p.aspect_ratio == "1:1");
  CHECK(p.version == "1.6");
  CHECK(p.webhook_url == "http://127.0.0.1:9/hook");
  CHECK(p.options.contains("cameraControl"));
  CHECK(p.options.size() == 1);
  CHECK(invalid(parse_rest_body(json::parse(R"({"prompt": "x"})"))).parameter == "service");
  CHECK(invalid(parse_rest_body(json::parse(R"({"service": "kling"})"))).parameter == "prompt");
  CHECK(invalid(parse_rest_body(json::parse(R"({"service": "kling", "prompt": "x", "duration": 3})"))).parameter ==
        "duration");
  CHECK(invalid(parse_rest_body(json::parse("[1]"))).parameter == "body");
}

TEST_CASE("fingerprints ignore key order and see every parameter") {
  GenerateParams a, b;
  a.prompt = b.prompt = "x";
  a.options = json::parse(R"({"a": 1, "b": {"c": 2, "d": 3}})").as_object();
  b.options = json::parse(R"({"b": {"d": 3, "c": 2}, "a": 1})").as_object();
  CHECK(a.fingerprint() == b.fingerprint());
  b.duration = 10;
  CHECK(a.fingerprint() != b.fingerprint());
  CHECK(canonical_json(json::parse(R"({"z": [ {"b": 1, "a": 2} ], "a": null})")) ==
        R"({"a":null,"z":[{"a":2,"b":1}]})");
}
