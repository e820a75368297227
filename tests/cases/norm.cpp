#include "tests/cases/cases.h"

namespace colt5::cases {

std::vector<OpCase> norm_cases() { return {}; }

}  // namespace colt5::cases
