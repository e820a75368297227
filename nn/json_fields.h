// Reading a config struct from JSON through its field list (a static for_each_field(self, f)
// that calls f(name, field) for every field): unknown keys and wrong types are errors naming the
// key, absent keys keep the struct's defaults. Shared by every config that goes into a checkpoint.
#pragma once

#include <set>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace colt5::nn {

template <class Config>
void read_json_fields(const nlohmann::json& j, const char* what, Config& c) {
  COLT5_CHECK(j.is_object(), what, ": expected a JSON object, got ", j.type_name());
  std::set<std::string> known;
  Config::for_each_field(c, [&](const char* name, auto& field) {
    known.insert(name);
    if (!j.contains(name)) return;
    const auto& v = j.at(name);
    using T = std::decay_t<decltype(field)>;
    bool ok;
    if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
    else if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
    else if constexpr (std::is_unsigned_v<T>) ok = v.is_number_unsigned();  // non-negative integers
    else if constexpr (std::is_integral_v<T>) ok = v.is_number_integer();
    else ok = v.is_number();
    COLT5_CHECK(ok, what, ": key '", name, "' has the wrong type (", v.type_name(), ")");
    v.get_to(field);
  });
  for (auto it = j.begin(); it != j.end(); ++it)
    COLT5_CHECK(known.count(it.key()), what, ": unknown key '", it.key(), "'");
}

}  // namespace colt5::nn
