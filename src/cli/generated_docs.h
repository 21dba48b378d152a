// The man page and the bash completion, generated from the same CLI11 definitions as
// --help (app.cpp), so they cannot drift from the flags.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace lens::cli {

// The man page (roff) of every documented command of `app` (hidden commands, those with an
// empty group, are left out) and its flags, with the exit statuses, environment and files.
[[nodiscard]] std::string man_page(const CLI::App& app);

// A bash completion script: command names, then each command's flags.
[[nodiscard]] std::string bash_completion(const CLI::App& app);

}  // namespace lens::cli
