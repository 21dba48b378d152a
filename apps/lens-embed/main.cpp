// lens-embed: parse, run, exit code. Everything else lives in src/cli.
#include "cli/app.h"

int main(int argc, char** argv) {
  return lens::cli::run_cli(argc, argv);
}
