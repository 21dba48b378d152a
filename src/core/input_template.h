// An input template of lens-embed.toml ([source] template, template_no_reply), parsed once:
// literal text and the placeholders {user}, {assistant}, {user.COLUMN}, {assistant.COLUMN}.
#pragma once

#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lens::core {

// The two messages of an exchange.
enum class Side { user, assistant };

class InputTemplate {
 public:
  // Literal text, or a placeholder (side set).
  struct Part {
    std::string literal;       // as it appears in the input ({{ and }} already made { and })
    std::optional<Side> side;  // set for a placeholder; literal is then empty
    std::string column;        // "" for the message's content ({user}); else {user.COLUMN}'s name
  };

  // "{user}\n\n{assistant}" and "{user}": the texts lens-embed has always embedded.
  [[nodiscard]] static InputTemplate default_reply();
  [[nodiscard]] static InputTemplate default_no_reply();

  // Syntax: text with placeholders in braces; {{ and }} stand for literal braces. COLUMN is a
  // name as sql_name.h reads it (plain, or "double quoted"). Checks the syntax only; which
  // placeholders a template must or must not hold is the mapping's rule (source_mapping.h).
  // On failure: a sentence naming the problem, its position (1-based, in bytes) and the fix,
  // without the key (the caller knows it).
  [[nodiscard]] static std::expected<InputTemplate, std::string> parse(std::string_view text);

  // The text as configured (before parsing), for display and the mapping's fingerprint.
  [[nodiscard]] const std::string& text() const { return text_; }
  [[nodiscard]] const std::vector<Part>& parts() const { return parts_; }

  // Index in parts() of the first {side} (the content, not a column), or nullopt.
  [[nodiscard]] std::optional<std::size_t> first_content(Side side) const;
  // Index in parts() of the first placeholder of `side` (content or column), or nullopt.
  [[nodiscard]] std::optional<std::size_t> first_placeholder(Side side) const;
  // The distinct COLUMNs of {side.COLUMN}, sorted.
  [[nodiscard]] std::vector<std::string> columns(Side side) const;

 private:
  std::string text_;
  std::vector<Part> parts_;
};

}  // namespace lens::core
