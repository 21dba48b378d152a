#include "support/fence_audit.h"

namespace lens::test {

std::string install_fence_audit(Db& db) {
  return db.exec(R"sql(
CREATE TABLE fence_audit (user_message_id uuid, old_version timestamptz, new_version timestamptz);
CREATE FUNCTION fence_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.source_version < OLD.source_version THEN
    INSERT INTO fence_audit VALUES (NEW.user_message_id, OLD.source_version, NEW.source_version);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fence_audit BEFORE UPDATE ON message_embeddings
  FOR EACH ROW EXECUTE FUNCTION fence_audit_row();
)sql");
}

std::int64_t older_overwrites(Db& db) {
  const auto n = db.scalar("SELECT count(*) FROM fence_audit");
  return n && !n->empty() ? std::stoll(*n) : -1;
}

}  // namespace lens::test
