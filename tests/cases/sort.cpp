#include "tests/cases/cases.h"

namespace colt5::cases {

std::vector<OpCase> sort_cases() { return {}; }

}  // namespace colt5::cases
