// The Lens source schema for tests (see source_schema.h).
#include "support/source_schema.h"

namespace lens::test {

std::string create_source_schema(Db& db) {
  return db.exec(db.is_postgres() ? k_postgres_source_schema : k_sqlite_source_schema);
}

}  // namespace lens::test
