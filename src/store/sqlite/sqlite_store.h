// SQLite implementation of Store: the embedded default (`sqlite:PATH`, `lens.db`).
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace lens::store {

// Opens (creating if missing) the SQLite database at `path` in WAL mode.
// On failure: not_found / permanent with the path and SQLite's message.
[[nodiscard]] util::Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

}  // namespace lens::store
