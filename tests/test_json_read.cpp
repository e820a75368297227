// nn/json_read: parse_json_untrusted (one crafted text per rule: nesting, duplicate keys,
// trailing bytes, UTF-8, syntax errors, each with a short message that starts with the source
// and names the offset), json_excerpt / text_excerpt (short, never cut inside a UTF-8 sequence)
// and the strict integer parsers.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/json_read.h"
#include "nn/safetensors.h"

using namespace colt5;
using namespace colt5::nn;
using json = nlohmann::json;

namespace {

// The message of the colt5::Error that parse_json_untrusted(text, source) throws ("" and a
// failed check when it throws none).
std::string parse_error_of(const std::string& text, const std::string& source = "src", const JsonLimits& limits = {}) {
  try {
    parse_json_untrusted(text, source, limits);
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("no error for a text of " << text.size() << " bytes starting '" << text.substr(0, 40) << "'");
  return "";
}

// Checks that `msg` starts with `source`, contains `what`, and is short.
void check_message(const std::string& msg, const std::string& source, const std::string& what) {
  CAPTURE(msg);
  CHECK(msg.rfind(source + ": ", 0) == 0);
  CHECK(msg.find(what) != std::string::npos);
  CHECK(msg.size() < 300);
}

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

bool valid_utf8(const std::string& s) {
  try {
    (void)json(s).dump();  // strict: throws on invalid UTF-8
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

}  // namespace

TEST_CASE("json_read: valid JSON parses as nlohmann::json::parse would") {
  const std::string texts[] = {
      R"({"a":1,"b":[true,false,null],"c":{"d":"e\"f\\g\u00e9\n"},"e":-2.5e-3,"f":18446744073709551615,"g":-9223372036854775808})",
      "[]",
      "{}",
      "  \t\r\n {\"x\": [1, 2, {\"y\": []}]}",  // leading whitespace of any kind
      "\"just a string\"",
      "42",
      "null",
      "\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80\"",  // UTF-8 of 2, 3 and 4 bytes
      "[\"[[[{{{\", \"\\\"]]]\"]",                      // brackets and quotes inside strings
  };
  for (const std::string& t : texts) {
    CAPTURE(t);
    CHECK(parse_json_untrusted(t, "t") == json::parse(t));
  }
  // Space padding after the value, as safetensors writers put it.
  CHECK(parse_json_untrusted("{\"a\":1}     ", "t") == json{{"a", 1}});
  CHECK(parse_json_untrusted("7   ", "t") == json(7));
  CHECK(parse_json_untrusted("\"s\" ", "t") == json("s"));
  // The same key in different objects is no duplicate.
  CHECK(parse_json_untrusted(R"({"a":{"a":{"a":1}},"b":{"a":2}})", "t")["a"]["a"]["a"] == 1);
}

TEST_CASE("json_read: nesting deeper than the limit is rejected before anything is built") {
  // 200,000 '[' (the crash of the issue): a short message naming the level and the offset.
  const std::string deep = std::string(200000, '[');
  check_message(parse_error_of(deep, "deep"), "deep", "nesting deeper than 64 levels at offset 64 ('[[[[");
  // Closed, so that only the depth is wrong.
  check_message(parse_error_of(deep + "1" + std::string(200000, ']'), "closed"), "closed",
                "nesting deeper than 64 levels at offset 64");
  // Objects: {"a":{"a":...1}}, 200,000 deep.
  const std::string objs = repeat("{\"a\":", 200000) + "1" + std::string(200000, '}');
  check_message(parse_error_of(objs, "objs"), "objs", "nesting deeper than 64 levels at offset 320 ('{\"a\":{");

  // Exactly at the limit parses; one more level does not.
  CHECK(parse_json_untrusted(std::string(64, '[') + std::string(64, ']'), "t").is_array());
  check_message(parse_error_of(std::string(65, '[') + std::string(65, ']')), "src", "nesting deeper than 64 levels at offset 64");
  // A caller's own limit.
  CHECK_NOTHROW(parse_json_untrusted(R"({"a":{"b":[1]}})", "t", {.max_depth = 3}));
  check_message(parse_error_of(R"({"a":{"b":[[1]]}})", "cfg", {.max_depth = 3}), "cfg", "nesting deeper than 3 levels at offset 11");
  // Brackets inside strings (escaped quotes included) do not count.
  CHECK(parse_json_untrusted("[\"" + std::string(100, '[') + "\\\"" + std::string(100, '{') + "\"]", "t").size() == 1);
  // The limit itself is validated.
  CHECK_THROWS_WITH_AS(parse_json_untrusted("1", "t", {.max_depth = 0}),
                       doctest::Contains("limits.max_depth must be in [1, 1000], got 0"), Error);
  CHECK_THROWS_WITH_AS(parse_json_untrusted("1", "t", {.max_depth = 5000}), doctest::Contains("got 5000"), Error);
  const std::string at_cap = std::string(1000, '[') + std::string(1000, ']');
  CHECK(parse_json_untrusted(at_cap, "t", {.max_depth = kJsonMaxDepthCap}).is_array());
}

TEST_CASE("json_read: deep nesting in metadata-like strings (a fixture's config, a checkpoint's colt5.config)") {
  // The strings are fine inside a safetensors header (they are JSON strings there); parsing them
  // again is where the depth bites.
  const std::string config = "{\"module\":\"CoLT5\",\"args\":" + std::string(200000, '[') + "}";
  const std::string ckpt = "{\"model\":" + repeat("{\"a\":", 200000) + "0" + std::string(200001, '}');
  const std::string file = serialize_safetensors({}, {{"config", config}, {"colt5.config", ckpt}});
  const SafetensorsFile f = parse_safetensors(file, "fixture.safetensors");
  REQUIRE(f.metadata.at("config") == config);
  check_message(parse_error_of(f.metadata.at("config"), "fixture.safetensors: metadata 'config'"),
                "fixture.safetensors: metadata 'config'", "nesting deeper than 64 levels at offset 88");
  check_message(parse_error_of(f.metadata.at("colt5.config"), "ckpt: metadata 'colt5.config'"),
                "ckpt: metadata 'colt5.config'", "nesting deeper than 64 levels at offset");
  // A realistic config parses.
  CHECK(parse_json_untrusted(R"({"module":"CoLT5","dim":16,"heads":[2,4]})", "cfg")["dim"] == 16);
}

TEST_CASE("json_read: duplicate keys are rejected in any object, naming the key and where") {
  check_message(parse_error_of(R"({"a":1,"b":2,"a":3})", "top"), "top", "duplicate key 'a' at offset 13 in the top-level object");
  check_message(parse_error_of(R"({"x":{"y":{"k":1,"k":2}}})", "nested"), "nested",
                "duplicate key 'k' at offset 17 in the object at /x/y");
  check_message(parse_error_of(R"({"list":[{"k":1},{"k":1,"k":2}]})", "in_array"), "in_array",
                "duplicate key 'k' at offset 24 in the object at /list/1");
  // Keys are compared decoded: "\u0061" is "a". The offset is the key's opening quote, found past
  // escaped quotes; '/' and '~' in the path are written ~1 and ~0 (RFC 6901).
  check_message(parse_error_of(R"({"a":1,"\u0061":2})", "escaped"), "escaped", "duplicate key 'a' at offset 7 in the top-level object");
  check_message(parse_error_of(R"({"q\"":1,"q\"":2})", "quote"), "quote", "duplicate key 'q\"' at offset 9");
  check_message(parse_error_of(R"({"a/b~c":{"z":1,"z":1}})", "slash"), "slash", "in the object at /a~1b~0c");
  // A huge duplicate key is quoted as an excerpt.
  const std::string big(100000, 'k');
  const std::string msg = parse_error_of("{\"" + big + "\":1,\"" + big + "\":2}", "big");
  check_message(msg, "big", "duplicate key 'kkkk");
  CHECK(msg.find("...' at offset 100006") != std::string::npos);
}

TEST_CASE("json_read: only spaces may follow the value") {
  // A NUL and garbage after the value (bytes a lenient parser would ignore).
  check_message(parse_error_of(std::string("{\"a\":1}\0garbage", 15), "nul"), "nul",
                "only spaces may follow the JSON value (which ends at offset 7); found byte 0x00 at offset 7 ('\\x00garbage')");
  check_message(parse_error_of(std::string("{\"a\":1}   \0", 11), "nul_after_spaces"), "nul_after_spaces",
                "found byte 0x00 at offset 10");
  // A second JSON value.
  check_message(parse_error_of(R"({"a":1} {"a":2})", "second"), "second", "found byte 0x7b at offset 8 ('{\"a\":2}')");
  check_message(parse_error_of("[1][2]", "second_array"), "second_array", "found byte 0x5b at offset 3");
  check_message(parse_error_of("1 2", "second_number"), "second_number", "found byte 0x32 at offset 2");
  check_message(parse_error_of(R"({} x)", "x"), "x", "found byte 0x78 at offset 3 ('x')");
  // Whitespace other than spaces: JSON allows it, the padding rule does not.
  check_message(parse_error_of("{}\n", "newline"), "newline", "found byte 0x0a at offset 2 ('\\x0a')");
  check_message(parse_error_of("{}  \t", "tab"), "tab", "found byte 0x09 at offset 4");
  // Invalid UTF-8 after the value is reported as the byte it is.
  check_message(parse_error_of("{} \xff", "ff"), "ff", "found byte 0xff at offset 3 ('\\xff')");
  // A long tail is quoted as an excerpt.
  const std::string msg = parse_error_of("{}" + std::string(1000000, 'z'), "long_tail");
  check_message(msg, "long_tail", "found byte 0x7a at offset 2 ('zzzz");
  CHECK(msg.find("...')") != std::string::npos);
}

TEST_CASE("json_read: UTF-8, byte-order mark and syntax errors") {
  check_message(parse_error_of("{\"\xff\":1}", "ff"), "ff", "not valid UTF-8 (bad byte 0xff at offset 2)");
  check_message(parse_error_of("[\"\xc0\xaf\"]", "overlong"), "overlong", "not valid UTF-8 (bad byte 0xc0 at offset 2)");
  check_message(parse_error_of("[\"\xed\xa0\x80\"]", "surrogate"), "surrogate", "not valid UTF-8 (bad byte 0xed at offset 2)");
  check_message(parse_error_of("[\"\xf4\x90\x80\x80\"]", "above_10ffff"), "above_10ffff", "not valid UTF-8");
  check_message(parse_error_of("[\"\xe2\x9c\"]", "cut_sequence"), "cut_sequence", "not valid UTF-8 (bad byte 0xe2 at offset 2)");
  check_message(parse_error_of("\xef\xbb\xbf{}", "bom"), "bom", "starts with a UTF-8 byte-order mark");

  check_message(parse_error_of(R"({"a": )", "eof"), "eof", "not valid JSON at offset 6 (line 1, column 7): syntax error");
  check_message(parse_error_of(R"({"a" 1})", "colon"), "colon", "not valid JSON at offset 5");
  check_message(parse_error_of("", "empty"), "empty", "not valid JSON at offset 0");
  check_message(parse_error_of("   ", "blank"), "blank", "not valid JSON");
  check_message(parse_error_of("[1,]", "comma"), "comma", "not valid JSON at offset 3");
  check_message(parse_error_of("{\"a\":1]", "mismatch"), "mismatch", "not valid JSON at offset 6");
  check_message(parse_error_of("truex", "literal"), "literal", "not valid JSON");
  check_message(parse_error_of("/* c */ {}", "comment"), "comment", "not valid JSON at offset 0");
  check_message(parse_error_of("[\"a\x01\"]", "control_char"), "control_char", "not valid JSON");
  check_message(parse_error_of(R"(["\ud800"])", "lone_surrogate_escape"), "lone_surrogate_escape", "not valid JSON");
  // An unterminated 1 MB string: nlohmann's message would quote all of it; ours an excerpt.
  const std::string msg = parse_error_of("[\"" + std::string(1000000, 's'), "unterminated");
  check_message(msg, "unterminated", "not valid JSON at offset 1000002");
  CHECK(msg.find("sss...'") != std::string::npos);
  // A 100,000-digit number that overflows a double.
  check_message(parse_error_of("[1" + std::string(100000, '0') + "]", "overflow"), "overflow", "number overflow");
}

TEST_CASE("json_read: json_excerpt and text_excerpt are short, like dump() when they fit") {
  const json small = json::parse(R"({"a":[0,12],"b":"x\"y","c":2.0,"d":null,"e":true})");
  CHECK(json_excerpt(small, 1000) == small.dump());
  CHECK(json_excerpt(json::parse("[4294967296,4294967296,2]")) == "[4294967296,4294967296,2]");
  CHECK(json_excerpt(json(-2)) == "-2");
  CHECK(json_excerpt(json(2.0)) == "2.0");
  CHECK(json_excerpt(json("a\nb\x01")) == "\"a\\nb\\x01\"");

  // Long values are cut at max_chars, then "...".
  json big = json::array();
  for (int i = 0; i < 100000; ++i) big.push_back(i);
  const std::string e = json_excerpt(big);
  CHECK(e.size() == kJsonExcerpt + 3);
  CHECK(e.rfind("[0,1,2,3,", 0) == 0);
  CHECK(e.substr(e.size() - 3) == "...");
  CHECK(json_excerpt(big, 10) == "[0,1,2,3,4...");
  CHECK(json_excerpt(big, 0) == "...");

  // Never cut inside a UTF-8 sequence; bytes that are not UTF-8 become \xNN.
  std::string accents;
  for (int i = 0; i < 100; ++i) accents += "\xc3\xa9";
  for (size_t max : {size_t(5), size_t(6), size_t(60), size_t(61)}) {
    const std::string x = json_excerpt(json(accents), max);
    CAPTURE(max);
    CHECK(x.size() <= max + 3);
    CHECK(valid_utf8(x));
    const std::string t = text_excerpt(accents, max);
    CHECK(t.size() <= max + 3);
    CHECK(valid_utf8(t));
  }
  CHECK(json_excerpt(json(std::string("a\xff"))) == "\"a\\xff\"");

  // A value nested deeper than the depth limit (built in code: the parser makes none) is cut at
  // the limit, whatever max_chars allows.
  json deep = json::array();
  json* p = &deep;
  for (int i = 0; i < 1000; ++i) p = &p->emplace_back(json::array());
  const std::string d = json_excerpt(deep, 100000);
  CHECK(d == std::string(64, '[') + "...");

  CHECK(text_excerpt("short") == "short");
  CHECK(text_excerpt(std::string("a\0b\x7f\xfe", 5)) == "a\\x00b\\x7f\\xfe");
  CHECK(text_excerpt(std::string(1000, 'q')) == std::string(60, 'q') + "...");
  CHECK(text_excerpt("") == "");
}

TEST_CASE("json_read: parse_int64_strict / parse_uint64_strict accept one spelling per value") {
  CHECK(parse_int64_strict("0", "n") == 0);
  CHECK(parse_int64_strict("1", "n") == 1);
  CHECK(parse_int64_strict("-1", "n") == -1);
  CHECK(parse_int64_strict("1200", "n") == 1200);
  CHECK(parse_int64_strict("9223372036854775807", "n") == INT64_MAX);
  CHECK(parse_int64_strict("-9223372036854775808", "n") == INT64_MIN);
  CHECK(parse_uint64_strict("0", "n") == 0);
  CHECK(parse_uint64_strict("42", "n") == 42);
  CHECK(parse_uint64_strict("18446744073709551615", "n") == UINT64_MAX);
  CHECK(parse_uint64_strict("9223372036854775808", "n") == 9223372036854775808ull);

  const std::string what = "ckpt.safetensors: metadata 'colt5.step'";
  auto check_bad = [&](const std::string& text, const std::string& expected, bool is_unsigned) {
    CAPTURE(text);
    std::string msg;
    try {
      if (is_unsigned) parse_uint64_strict(text, what);
      else parse_int64_strict(text, what);
      FAIL_CHECK("no error");
    } catch (const Error& e) {
      msg = e.what();
    }
    check_message(msg, what, expected);
  };
  for (bool u : {false, true}) {
    const std::string form = u ? "expected a non-negative decimal integer" : "expected a decimal integer";
    check_bad("1abc", form, u);
    check_bad("1abc", "got '1abc'", u);
    check_bad(" 1", "got ' 1'", u);
    check_bad("1 ", "got '1 '", u);
    check_bad("+1", "got '+1'", u);
    check_bad("01", "got '01' (leading zero)", u);
    check_bad("00", "(leading zero)", u);
    check_bad("", "got '' (an empty string)", u);
    check_bad("-", "got '-'", u);
    check_bad("1.0", "got '1.0'", u);
    check_bad("1e3", "got '1e3'", u);
    check_bad("0x10", "got '0x10'", u);
    check_bad(std::string("1\0", 2), "got '1\\x00'", u);
    check_bad(std::string(1000, '7') + "x", "...'", u);  // excerpted
  }
  check_bad("-0", "got '-0' (zero is written 0)", false);
  check_bad("-01", "(leading zero)", false);
  check_bad("--1", "got '--1'", false);
  check_bad("-1", "got '-1'", true);
  check_bad("9223372036854775808", "'9223372036854775808' is out of the int64 range [-9223372036854775808, 9223372036854775807]", false);
  check_bad("-9223372036854775809", "is out of the int64 range", false);
  check_bad("18446744073709551616", "'18446744073709551616' is out of the uint64 range [0, 18446744073709551615]", true);
  check_bad("99999999999999999999999999", "is out of the int64 range", false);
  check_bad(std::string(1000, '9'), "is out of the uint64 range", true);
}
