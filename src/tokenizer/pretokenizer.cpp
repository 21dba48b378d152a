// PCRE2 (JIT) pre-tokenizer with tiktoken's exact cl100k_base and o200k_base patterns.
// tiktoken's Rust regex reads \s as Unicode White_Space; PCRE2's UCP \s differs (it omits
// U+0085), so \s and \S are spelled out as that property's fixed code point list.
#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

namespace lens::tokenizer {
namespace {

// Unicode White_Space (stable since Unicode 6.3), as the body of a character class.
#define LENS_WS          \
  "\\t\\n\\x{0B}\\f\\r " \
  "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

// cl100k_base: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//              ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
constexpr std::string_view k_cl100k_pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}{1,3}"
    "| ?[^" LENS_WS
    "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" LENS_WS
    "]*[\\r\\n]+"
    "|[" LENS_WS "]+(?![^" LENS_WS
    "])"
    "|[" LENS_WS "]+";

// o200k_base: the seven alternatives of tiktoken's o200k pat_str, joined with '|'.
constexpr std::string_view k_o200k_pattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^" LENS_WS
    "\\p{L}\\p{N}]+[\\r\\n/]*"
    "|[" LENS_WS
    "]*[\\r\\n]+"
    "|[" LENS_WS "]+(?![^" LENS_WS
    "])"
    "|[" LENS_WS "]+";

#undef LENS_WS

// Per-thread match state: match data is independent of the pattern, and the JIT stack
// must be able to grow for long whitespace runs that \s+(?!\S) backtracks over.
struct ThreadState {
  pcre2_match_data* md = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  ThreadState() {
    md = pcre2_match_data_create(1, nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    if (ctx != nullptr) {
      if (stack != nullptr) pcre2_jit_stack_assign(ctx, nullptr, stack);
      // The default match limit (10M) stops a single 10 MB whitespace run; these patterns
      // are linear per match, so no limit is needed against runaway backtracking.
      pcre2_set_match_limit(ctx, 0xFFFFFFFFu);
      pcre2_set_depth_limit(ctx, 0xFFFFFFFFu);
      pcre2_set_heap_limit(ctx, 0xFFFFFFFFu);
    }
  }
  ~ThreadState() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
  ThreadState(const ThreadState&) = delete;
  ThreadState& operator=(const ThreadState&) = delete;
};

ThreadState& thread_state() {
  thread_local ThreadState state;
  return state;
}

}  // namespace

std::string_view Pretokenizer::pattern(Encoding encoding) {
  return encoding == Encoding::cl100k_base ? k_cl100k_pattern : k_o200k_pattern;
}

util::Result<std::unique_ptr<Pretokenizer>> Pretokenizer::create(Encoding encoding) {
  const std::string_view pat = pattern(encoding);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return util::fail(util::ErrorCode::internal, "pre-tokenizer pattern does not compile at " +
                                                     std::to_string(err_off) + ": " +
                                                     reinterpret_cast<const char*>(msg));
  }
  // JIT failure is not fatal: pcre2_match falls back to the interpreter by itself.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Pretokenizer> p(new Pretokenizer());
  p->code_ = code;
  return p;
}

Pretokenizer::~Pretokenizer() {
  pcre2_code_free(static_cast<pcre2_code*>(code_));
}

Pretokenizer::Match Pretokenizer::next(std::string_view text, std::size_t pos) const {
  ThreadState& ts = thread_state();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, ts.md, ts.ctx);
  if (rc < 0) {
    // PCRE2_ERROR_NOMATCH: nothing left. Resource limits (huge inputs): the interpreter has
    // separate, heap-based limits, so retry there before giving up on the rest.
    if (rc != PCRE2_ERROR_NOMATCH) {
      rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, ts.md, ts.ctx);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return {text.size(), text.size()};
    if (rc < 0) {
      // Out of resources even so: never drop text. The next code point becomes a piece of
      // its own (counts stay close; tiktoken itself errors out on such inputs).
      std::size_t end = pos + 1;
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
        ++end;
      return {pos, end};
    }
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ts.md);
  return {static_cast<std::size_t>(ov[0]), static_cast<std::size_t>(ov[1])};
}

}  // namespace lens::tokenizer
