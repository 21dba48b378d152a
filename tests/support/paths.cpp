// The build-time paths (compile definitions of lens_test_support only).
#include "support/paths.h"

namespace lens::test {

const std::string& lens_embed_binary() {
  static const std::string path = LENS_EMBED_BIN;
  return path;
}

const std::string& sample_corpus_binary() {
  static const std::string path = LENS_SAMPLE_CORPUS_BIN;
  return path;
}

const std::string& source_dir() {
  static const std::string path = LENS_SOURCE_DIR;
  return path;
}

const std::string& source_data_dir() {
  static const std::string path = LENS_SOURCE_DATA_DIR;
  return path;
}

std::string pg_test_server_script() {
  return source_dir() + "/scripts/pg-test-server.sh";
}

}  // namespace lens::test
