// Reading JSON from untrusted text: the one way colt5 parses JSON that comes from a file (a
// safetensors header, a metadata string such as a golden fixture's "config" or a checkpoint's
// "colt5.config") — and the strict integer parsers for numbers stored as metadata strings.
//
// Why a wrapper: files are untrusted input, and a JSON library on its own is too lenient or too
// fragile for them. nlohmann::json builds, prints (dump) and destroys values recursively, so a
// text of 200,000 nested '[' overflows the stack (a crash, no message) wherever that value goes;
// it keeps the last of two duplicate keys silently; and a message that embeds a value or a token
// can be megabytes long. parse_json_untrusted checks, in this order:
//   1. no UTF-8 byte-order mark at the start (JSON text must not have one);
//   2. nesting: at most limits.max_depth (default 64) arrays / objects inside one another, the
//      outermost one counting 1 ({"a": [1]} has depth 2). This is checked by a scan of the raw
//      bytes that stops at the first bracket over the limit, *before* anything is built, so no
//      deep value ever exists (no recursion in construction, error formatting or destruction);
//      the same scan finds where the (first) JSON value ends;
//   3. the value's bytes are valid UTF-8 (overlong forms, surrogates, code points above U+10FFFF
//      are not);
//   4. the value parses as JSON (RFC 8259; no comments), through nlohmann's SAX interface into a
//      value built here, which rejects a duplicate key in any object (RFC 8259 leaves them
//      undefined; we refuse to guess which one the writer meant);
//   5. after the value only spaces (0x20) follow, up to the end of the text — the padding
//      safetensors writers use. Anything else (a NUL, a newline, other bytes, a second value)
//      is an error: bytes a reader ignores are bytes whose meaning nobody checked.
// Errors are colt5::Error; the message starts with `source`, gives the byte offset (from the
// first byte of `text`) and quotes at most a short excerpt of the offending text (kJsonExcerpt
// bytes, then "..." when cut; control and non-UTF-8 bytes written as \xNN), e.g.
//   ckpt.safetensors: header: nesting deeper than 8 levels at offset 57 ('[[[[[[[[[[[[[...')
//   ckpt.safetensors: header: duplicate key 'dtype' at offset 20 in the object at /a
//   ckpt.safetensors: header: only spaces may follow the JSON value (which ends at offset 61); found
//     byte 0x00 at offset 61 ('\x00junk')
//   fixture 'x': metadata 'config': not valid JSON at offset 12 (line 1, column 13): syntax error
//     while parsing object key - unexpected '}'; expected string literal
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace colt5::nn {

// Longest excerpt of untrusted text or of a value quoted in an error message (before "...").
inline constexpr size_t kJsonExcerpt = 60;
// The deepest nesting any caller may ask for: beyond it nlohmann's recursive dump() and
// destructor are no longer safely inside a thread's stack.
inline constexpr size_t kJsonMaxDepthCap = 1000;

struct JsonLimits {
  // Arrays / objects nested in one another, the outermost counting 1; a scalar has depth 0.
  // Must be in [1, kJsonMaxDepthCap].
  size_t max_depth = 64;
};

// Parse `text` as one JSON value with the checks above; `source` starts every error message.
nlohmann::json parse_json_untrusted(std::string_view text, const std::string& source, const JsonLimits& limits = {});

// A compact rendering of `j` for error messages, like j.dump() ([0,12], {"a":"x"}), but never
// longer than max_chars bytes plus "..." when cut, never cut inside a UTF-8 sequence (in
// strings, control characters other than \n \t \r and bytes that are not UTF-8 are written
// \xNN), and never recursing deeper than JsonLimits{}.max_depth
// (a value nested deeper — one built in code, since parse_json_untrusted makes none — is cut
// there with "...").
std::string json_excerpt(const nlohmann::json& j, size_t max_chars = kJsonExcerpt);

// A short quotable rendering of raw, untrusted text: at most max_chars bytes plus "..." when
// cut; control bytes, DEL and bytes that are not UTF-8 are written \xNN, so the result is
// printable UTF-8 whatever the input.
std::string text_excerpt(std::string_view text, size_t max_chars = kJsonExcerpt);

// Strict decimal integers, for numbers stored as text (e.g. metadata "colt5.step" = "1200").
// The whole string must be an optional '-' (int64 only) followed by decimal digits: no spaces,
// no '+', no leading zeros except "0" itself, no "-0" (every value has exactly one spelling,
// the one std::to_string writes), and within range. Otherwise colt5::Error:
//   <what>: expected a decimal integer (optional '-', digits, no leading zeros), got '1abc'
//   <what>: '9223372036854775808' is out of the int64 range [-9223372036854775808, 9223372036854775807]
int64_t parse_int64_strict(std::string_view text, const std::string& what);
// The same without the sign: digits only, range [0, 18446744073709551615].
uint64_t parse_uint64_strict(std::string_view text, const std::string& what);

}  // namespace colt5::nn
