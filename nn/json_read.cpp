// Untrusted JSON reading and strict integers (rules and messages: nn/json_read.h).
//
// How the pieces fit:
//   - scan_value: one pass over the raw bytes that tracks strings (so brackets inside them do not
//     count) and the bracket depth, stops at the first bracket over the limit, and returns where
//     the first value ends. On every prefix that nlohmann accepts, its tokens and ours agree, so
//     its nesting never exceeds what this scan allowed.
//   - Builder: nlohmann's SAX events assembled into a value, with duplicate keys caught when the
//     key arrives (the object being built is the key set). nlohmann's own callback parser is not
//     used: after every nested object it walks the whole parent looking for discarded children,
//     which made a header of n tensors cost O(n^2) (100,000 empty tensors: minutes).
//   - The byte offset of a duplicate key comes from an input iterator that records how far the
//     lexer has read; nlohmann's SAX interface gives positions only with parse errors.
#include "nn/json_read.h"

#include <iterator>
#include <limits>
#include <vector>

#include "core/error.h"

namespace colt5::nn {

using json = nlohmann::json;

namespace {

// Length of the well-formed UTF-8 sequence at p[0..n), or 0 when it is not one (overlong
// forms, surrogates and code points above U+10FFFF are not well-formed).
size_t utf8_sequence(const unsigned char* p, size_t n) {
  const unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if (len > n) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Offset of the first byte that breaks UTF-8, or npos.
size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8_sequence(p + i, s.size() - i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

const char kHex[] = "0123456789abcdef";

void append_hex_byte(std::string& out, unsigned char b) {
  out += "\\x";
  out += kHex[b >> 4];
  out += kHex[b & 15];
}

std::string hex_byte(unsigned char b) {
  std::string s = "0x";
  s += kHex[b >> 4];
  s += kHex[b & 15];
  return s;
}

// Appends s to out as text_excerpt does (or, with json_string, with JSON string escapes for '"',
// '\\' and control characters), stopping once out holds more than `limit` bytes. Returns false
// when it stopped early.
bool append_escaped(std::string& out, std::string_view s, size_t limit, bool json_string) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    if (out.size() > limit) return false;
    const unsigned char c = p[i];
    if (json_string && (c == '"' || c == '\\')) {
      out += '\\';
      out += char(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      if (json_string && c == '\n') out += "\\n";
      else if (json_string && c == '\t') out += "\\t";
      else if (json_string && c == '\r') out += "\\r";
      else append_hex_byte(out, c);
      ++i;
    } else {
      const size_t len = utf8_sequence(p + i, s.size() - i);
      if (len == 0) {
        append_hex_byte(out, c);
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
    }
  }
  return out.size() <= limit;
}

// Cuts out (valid UTF-8 plus ASCII escapes) to at most max_chars bytes, at a UTF-8 boundary, and
// appends "..." — when it is longer, or when `cut` says something was left out already.
std::string finish_excerpt(std::string out, size_t max_chars, bool cut) {
  if (out.size() > max_chars) {
    size_t c = max_chars;
    while (c > 0 && (static_cast<unsigned char>(out[c]) & 0xC0) == 0x80) --c;  // not inside a sequence
    out.resize(c);
    cut = true;
  }
  if (cut) out += "...";
  return out;
}

// ---- excerpts of values ----------------------------------------------------------------------

// Renders j into out like dump() would, stopping once out holds more than `limit` bytes or at
// containers deeper than max_depth. Returns false when it stopped early.
bool render(const json& j, std::string& out, size_t limit, size_t depth, size_t max_depth) {
  if (out.size() > limit) return false;
  switch (j.type()) {
    case json::value_t::object: {
      if (depth >= max_depth) return false;
      out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += ',';
        first = false;
        out += '"';
        if (!append_escaped(out, it.key(), limit, true)) return false;
        out += "\":";
        if (!render(it.value(), out, limit, depth + 1, max_depth)) return false;
        if (out.size() > limit) return false;
      }
      out += '}';
      break;
    }
    case json::value_t::array: {
      if (depth >= max_depth) return false;
      out += '[';
      bool first = true;
      for (const json& v : j) {
        if (!first) out += ',';
        first = false;
        if (!render(v, out, limit, depth + 1, max_depth)) return false;
        if (out.size() > limit) return false;
      }
      out += ']';
      break;
    }
    case json::value_t::string:
      out += '"';
      if (!append_escaped(out, j.get_ref<const json::string_t&>(), limit, true)) return false;
      out += '"';
      break;
    case json::value_t::binary: out += str("<binary, ", j.get_binary().size(), " bytes>"); break;
    case json::value_t::discarded: out += "<discarded>"; break;
    default: out += j.dump(); break;  // null, boolean, numbers: short
  }
  return out.size() <= limit;
}

// ---- the pre-scan --------------------------------------------------------------------------------

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Where the first JSON value of `text` ends (one past its last byte), checking the nesting on the
// way: throws at the first '[' or '{' that opens level max_depth + 1. A value that is not closed
// ends at the end of the text (the parser then reports it).
size_t scan_value(std::string_view text, const std::string& source, size_t max_depth) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n && is_json_space(text[i])) ++i;
  if (i == n) return n;
  const char first = text[i];
  if (first == '"') {  // a string: up to the closing quote
    for (size_t j = i + 1; j < n; ++j) {
      if (text[j] == '\\') ++j;
      else if (text[j] == '"') return j + 1;
    }
    return n;
  }
  if (first != '[' && first != '{') {
    // A number or a literal (true, false, null) or garbage: the run of bytes up to whitespace or
    // a structural character. A lone structural character is its own (bad) token.
    size_t j = i;
    const std::string_view structural = "{}[],:\"";
    while (j < n && !is_json_space(text[j]) && structural.find(text[j]) == std::string_view::npos) ++j;
    return j == i ? i + 1 : j;
  }
  size_t depth = 0;
  bool in_string = false;
  for (size_t j = i; j < n; ++j) {
    const char c = text[j];
    if (in_string) {
      if (c == '\\') ++j;  // the escaped byte cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        fail(str(source, ": nesting deeper than ", max_depth, " levels at offset ", j, " ('",
                 text_excerpt(text.substr(j)), "')"));
    } else if (c == ']' || c == '}') {
      if (--depth == 0) return j + 1;
    }
  }
  return n;
}

// ---- the SAX builder -----------------------------------------------------------------------------

// A char iterator that stores, in *mark, how far it has been advanced: the lexer reads byte by
// byte, so at a key event *mark is one past the key's closing quote.
class TrackingIterator {
public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* p, const char** mark) : p_(p), mark_(mark) {}
  reference operator*() const { return *p_; }
  TrackingIterator& operator++() {
    *mark_ = ++p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& o) const { return p_ == o.p_; }
  bool operator!=(const TrackingIterator& o) const { return p_ != o.p_; }

private:
  const char* p_;
  const char** mark_;
};

// Builds the value from SAX events. On a problem it stores the message in `error` and returns
// false, which stops the parser (no exception travels through the library).
class Builder {
public:
  Builder(std::string_view text, const std::string& source, size_t max_depth, const char* const* mark)
      : text_(text), source_(source), max_depth_(max_depth), mark_(mark) {}

  json root;
  std::string error;

  // Scalars cannot fail (a number out of range is a parse_error of nlohmann's).
  bool null() { put(json(nullptr)); return true; }
  bool boolean(bool v) { put(json(v)); return true; }
  bool number_integer(json::number_integer_t v) { put(json(v)); return true; }
  bool number_unsigned(json::number_unsigned_t v) { put(json(v)); return true; }
  bool number_float(json::number_float_t v, const json::string_t& /*text*/) { put(json(v)); return true; }
  bool string(json::string_t& v) { put(json(std::move(v))); return true; }  // the lexer's buffer: ours to take
  bool binary(json::binary_t& v) { put(json::binary(std::move(v))); return true; }  // not made from JSON text

  bool start_object(std::size_t /*size, unknown for JSON text*/) { return open(json::object()); }
  bool start_array(std::size_t /*size*/) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& k) {
    json& obj = *stack_.back();
    if (obj.contains(k)) {
      error = str(source_, ": duplicate key '", text_excerpt(k), "'", key_offset(), " in ",
                  stack_.size() == 1 ? std::string("the top-level object") : str("the object at ", path()));
      return false;
    }
    keys_.back() = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& ex) {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, column 18:
    // syntax error while parsing object - ...; last read: '<token>'". The token can be the whole
    // rest of the text (an unterminated string), so it is replaced by an excerpt, and the
    // location becomes a byte offset.
    std::string w = ex.what(), where, detail = w;
    if (const size_t a = w.find("parse error at "); a != std::string::npos) {
      if (const size_t b = w.find(": ", a); b != std::string::npos) {
        where = w.substr(a + 15, b - a - 15);
        detail = w.substr(b + 2);
      }
    } else if (const size_t b = w.find("] "); w.rfind("[json.exception.", 0) == 0 && b != std::string::npos) {
      detail = w.substr(b + 2);
    }
    if (!last_token.empty()) {
      const std::string quoted = str("'", last_token, "'");
      if (const size_t t = detail.find(quoted); t != std::string::npos)
        detail.replace(t, quoted.size(), str("'", text_excerpt(last_token), "'"));
    }
    const size_t offset = position > 0 ? position - 1 : 0;
    error = str(source_, ": not valid JSON at offset ", offset, where.empty() ? std::string() : str(" (", where, ")"),
                ": ", text_excerpt(detail, 4 * kJsonExcerpt));
    return false;
  }

private:
  // Adds v where the next value goes and returns where it went. (The pointers on stack_ stay
  // valid: a container is only appended to while it is the innermost open one.)
  json* put(json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      json::array_t& a = top.get_ref<json::array_t&>();
      a.push_back(std::move(v));
      return &a.back();
    }
    // An object: key() has checked that keys_.back() is new.
    return &top.get_ref<json::object_t&>().emplace(keys_.back(), std::move(v)).first->second;
  }

  bool open(json&& empty) {
    // The pre-scan has enforced the limit already; this keeps the builder safe on its own.
    if (stack_.size() >= max_depth_) {
      const size_t at = size_t(*mark_ - text_.data());
      error = str(source_, ": nesting deeper than ", max_depth_, " levels at offset ", at > 0 ? at - 1 : 0);
      return false;
    }
    json* c = put(std::move(empty));
    stack_.push_back(c);
    keys_.emplace_back();
    return true;
  }

  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  // " at offset N" for the key just read (the lexer stopped one past its closing quote), found
  // by walking back to the opening quote: the first '"' not escaped by an odd run of '\'.
  std::string key_offset() const {
    const size_t end = size_t(*mark_ - text_.data());
    if (end < 2 || end > text_.size() || text_[end - 1] != '"') return std::string();
    for (size_t q = end - 1; q-- > 0;) {
      if (text_[q] != '"') continue;
      size_t slashes = 0;
      while (slashes < q && text_[q - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) return str(" at offset ", q);
    }
    return std::string();
  }

  // JSON pointer (RFC 6901) of the innermost open container, excerpted.
  std::string path() const {
    std::string p;
    for (size_t level = 1; level < stack_.size(); ++level) {
      const json& parent = *stack_[level - 1];
      p += '/';
      if (parent.is_array()) {
        p += std::to_string(parent.size() - 1);
        continue;
      }
      for (char c : keys_[level - 1]) {
        if (c == '~') p += "~0";
        else if (c == '/') p += "~1";
        else p += c;
      }
      if (p.size() > 4 * kJsonExcerpt) break;  // text_excerpt cuts it anyway
    }
    return text_excerpt(p);
  }

  std::string_view text_;
  const std::string& source_;
  size_t max_depth_;
  const char* const* mark_;
  std::vector<json*> stack_;         // open containers, outermost first
  std::vector<std::string> keys_;    // per open container: the object's current key
};

// ---- strict integers -----------------------------------------------------------------------------

// Checks that `text` is a canonical decimal integer (the form rules of json_read.h; a '-' only
// with allow_sign) and returns its magnitude in *magnitude, or false when it does not fit 64 bits
// (the caller reports its own range). Form errors throw, naming `what`.
bool parse_magnitude(std::string_view text, const std::string& what, bool allow_sign, bool* negative,
                     uint64_t* magnitude) {
  const char* form =
      allow_sign ? "expected a decimal integer (an optional '-' and digits, no leading zeros, no '+' or spaces)"
                 : "expected a non-negative decimal integer (digits only, no leading zeros, no sign or spaces)";
  auto bad = [&](const char* why) { fail(str(what, ": ", form, ", got '", text_excerpt(text), "'", why)); };
  if (text.empty()) bad(" (an empty string)");
  *negative = allow_sign && text[0] == '-';
  const std::string_view digits = text.substr(*negative ? 1 : 0);
  if (digits.empty()) bad("");
  for (char c : digits)
    if (c < '0' || c > '9') bad("");
  if (digits.size() > 1 && digits[0] == '0') bad(" (leading zero)");
  if (*negative && digits == "0") bad(" (zero is written 0)");
  uint64_t v = 0;
  for (char c : digits)
    if (__builtin_mul_overflow(v, uint64_t(10), &v) || __builtin_add_overflow(v, uint64_t(c - '0'), &v)) return false;
  *magnitude = v;
  return true;
}

}  // namespace

// ---- public ----------------------------------------------------------------------------------------

std::string text_excerpt(std::string_view text, size_t max_chars) {
  std::string out;
  const bool complete = append_escaped(out, text, max_chars, false);
  return finish_excerpt(std::move(out), max_chars, !complete);
}

std::string json_excerpt(const json& j, size_t max_chars) {
  std::string out;
  const bool complete = render(j, out, max_chars, 0, JsonLimits{}.max_depth);
  return finish_excerpt(std::move(out), max_chars, !complete);
}

json parse_json_untrusted(std::string_view text, const std::string& source, const JsonLimits& limits) {
  COLT5_CHECK(limits.max_depth >= 1 && limits.max_depth <= kJsonMaxDepthCap, "parse_json_untrusted (", source,
              "): limits.max_depth must be in [1, ", kJsonMaxDepthCap, "], got ", limits.max_depth);

  // 1. No byte-order mark (nlohmann would skip one silently).
  if (text.substr(0, 3) == "\xEF\xBB\xBF")
    fail(str(source, ": starts with a UTF-8 byte-order mark (bytes 0xef 0xbb 0xbf), which JSON text must not have"));

  // 2. Nesting, and where the value ends.
  const size_t end = scan_value(text, source, limits.max_depth);
  const std::string_view value = text.substr(0, end);

  // 3. UTF-8 (nlohmann checks strings too, but this names the offset and the byte).
  if (const size_t bad = invalid_utf8_at(value); bad != std::string_view::npos)
    fail(str(source, ": not valid UTF-8 (bad byte ", hex_byte(static_cast<unsigned char>(value[bad])), " at offset ",
             bad, ")"));

  // 4. Parse the value's bytes (strict: they must be exactly one value).
  const char* mark = value.data();
  Builder builder(text, source, limits.max_depth, &mark);
  bool ok;
  try {
    ok = json::sax_parse(TrackingIterator(value.data(), &mark), TrackingIterator(value.data() + value.size(), &mark),
                         &builder, json::input_format_t::json, /*strict=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {  // not expected (errors come through Builder::parse_error)
    fail(str(source, ": not valid JSON: ", text_excerpt(e.what(), 4 * kJsonExcerpt)));
  }
  if (!ok) fail(builder.error.empty() ? str(source, ": not valid JSON") : builder.error);

  // 5. Only spaces after the value.
  for (size_t i = end; i < text.size(); ++i)
    if (text[i] != ' ')
      fail(str(source, ": only spaces may follow the JSON value (which ends at offset ", end, "); found byte ",
               hex_byte(static_cast<unsigned char>(text[i])), " at offset ", i, " ('", text_excerpt(text.substr(i)),
               "')"));
  return std::move(builder.root);
}

int64_t parse_int64_strict(std::string_view text, const std::string& what) {
  bool negative;
  uint64_t m;
  const uint64_t max = uint64_t(std::numeric_limits<int64_t>::max()) + 1;  // |INT64_MIN|
  if (!parse_magnitude(text, what, true, &negative, &m) || m > max - (negative ? 0 : 1))
    fail(str(what, ": '", text_excerpt(text), "' is out of the int64 range [", std::numeric_limits<int64_t>::min(),
             ", ", std::numeric_limits<int64_t>::max(), "]"));
  return negative ? int64_t(0 - m) : int64_t(m);  // 0 - 2^63 wraps to INT64_MIN's bit pattern
}

uint64_t parse_uint64_strict(std::string_view text, const std::string& what) {
  bool negative;
  uint64_t m;
  if (!parse_magnitude(text, what, false, &negative, &m))
    fail(str(what, ": '", text_excerpt(text), "' is out of the uint64 range [0, ", std::numeric_limits<uint64_t>::max(),
             "]"));
  return m;
}

}  // namespace colt5::nn
