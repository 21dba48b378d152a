// Where the things under test are: the lens-embed binary, the repository, its data.
// The build gives these paths to this library alone (tests/support/CMakeLists.txt), so a
// test names the binary one way: lens::test::lens_embed_binary().
#pragma once

#include <string>

namespace lens::test {

// The lens-embed binary of this build.
const std::string& lens_embed_binary();
// The lens-sample-corpus tool of this build.
const std::string& sample_corpus_binary();
// The repository's root (scripts/, tests/ data files).
const std::string& source_dir();
// data/ of the repository: the tokenizer tables, for LENS_DATA_DIR.
const std::string& source_data_dir();
// scripts/pg-test-server.sh: starts and stops throwaway PostgreSQL servers.
std::string pg_test_server_script();

}  // namespace lens::test
