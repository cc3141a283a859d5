// Shared or exclusive: one spelling for every layer (helpers, decorators, the
// resource records and back ends).
#pragma once

namespace fasteners::detail {

enum class lock_kind { shared, exclusive };

}  // namespace fasteners::detail
