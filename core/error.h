// colt5::Error — the one exception type of the library.
//
// Every public function validates its arguments and throws colt5::Error with a message that
// names the function, the argument, what was expected and what it got, e.g.
//   matmul: argument 'b' expected size 7 in dim 0 (to match a's dim 1), got 5
// The message is built by concatenating streamable pieces, so this header stays light
// (no fmt here: it is included by nearly every file, and by CUDA sources too).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace colt5 {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class T>
void append(std::ostringstream& os, const T& v) { os << v; }

// Shapes and other vectors print as [2, 3, 4].
template <class T>
void append(std::ostringstream& os, const std::vector<T>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
}
}  // namespace detail

// str("a", 1, shape) -> "a1[2, 3]"
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (detail::append(os, args), ...);
  return os.str();
}

[[noreturn]] inline void fail(const std::string& msg) { throw Error(msg); }

}  // namespace colt5

// COLT5_CHECK(cond, pieces...): throw colt5::Error(str(pieces...)) when cond is false.
#define COLT5_CHECK(cond, ...)                                  \
  do {                                                          \
    if (!(cond)) ::colt5::fail(::colt5::str(__VA_ARGS__));      \
  } while (0)
