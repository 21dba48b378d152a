// Generates the tokenizer parity corpus (data/corpus.jsonl) and the ids tiktoken gives it
// for cl100k_base and o200k_base (data/expected.bin). Run: npm ci && node gen_expected.mjs
// Deterministic: same tiktoken version + this script => byte-identical output.
import { get_encoding } from "tiktoken";
import { writeFileSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";

// ---------------------------------------------------------------- deterministic random
let seed = 0x1234abcd;
function rand() {  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randint = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));  // inclusive
const pick = (a) => a[Math.floor(rand() * a.length)];
const repeat = (n, f) => Array.from({ length: n }, (_, i) => f(i));

// Code points whose letter/mark/number class differs between Unicode 14 (PCRE2 10.42, used
// by the C++ tokenizer) and Unicode 16/17 (tiktoken's Rust regex, this Node). They are a
// known, documented divergence (new scripts, CJK Ext H/I), so the corpus avoids them.
// Derived by comparing Python 3.11 unicodedata (14.0) with Node 20's \p{gc=..} (17.0).
const UNICODE_AFTER_14 = [[0x295,0x295],[0x88F,0x88F],[0x897,0x897],[0xC5C,0xC5C],[0xCDC,0xCDC],[0xCF3,0xCF3],[0xECE,0xECE],[0x1ACF,0x1ADD],[0x1AE0,0x1AEB],[0x1C89,0x1C8A],[0xA7CB,0xA7CF],[0xA7D2,0xA7D2],[0xA7D4,0xA7D4],[0xA7DA,0xA7DC],[0xA7F1,0xA7F1],[0x105C0,0x105F3],[0x10940,0x10959],[0x10D40,0x10D65],[0x10D69,0x10D6D],[0x10D6F,0x10D85],[0x10EC2,0x10EC7],[0x10EFA,0x10EFF],[0x1123F,0x11241],[0x11380,0x11389],[0x1138B,0x1138B],[0x1138E,0x1138E],[0x11390,0x113B5],[0x113B7,0x113C0],[0x113C2,0x113C2],[0x113C5,0x113C5],[0x113C7,0x113CA],[0x113CC,0x113D3],[0x113E1,0x113E2],[0x116D0,0x116E3],[0x11B60,0x11B67],[0x11BC0,0x11BE0],[0x11BF0,0x11BF9],[0x11DB0,0x11DDB],[0x11DE0,0x11DE9],[0x11F00,0x11F10],[0x11F12,0x11F3A],[0x11F3E,0x11F42],[0x11F50,0x11F5A],[0x1342F,0x1342F],[0x13440,0x13455],[0x13460,0x143FA],[0x16100,0x16139],[0x16D40,0x16D6C],[0x16D70,0x16D79],[0x16EA0,0x16EB8],[0x16EBB,0x16ED3],[0x16FF2,0x16FF6],[0x187F8,0x187FF],[0x18CFF,0x18CFF],[0x18D09,0x18D1E],[0x18D80,0x18DF2],[0x1B132,0x1B132],[0x1B155,0x1B155],[0x1CCF0,0x1CCF9],[0x1D2C0,0x1D2D3],[0x1DF25,0x1DF2A],[0x1E030,0x1E06D],[0x1E08F,0x1E08F],[0x1E4D0,0x1E4F9],[0x1E5D0,0x1E5FA],[0x1E6C0,0x1E6DE],[0x1E6E0,0x1E6F5],[0x1E6FE,0x1E6FF],[0x2B739,0x2B73F],[0x2CEA2,0x2CEAD],[0x2EBF0,0x2EE5D],[0x31350,0x33479]];
const after14 = (cp) => UNICODE_AFTER_14.some(([a, b]) => cp >= a && cp <= b);

const records = [];
const add = (cat, text) => records.push({ cat, text });

// ---------------------------------------------------------------- 1. every general category
const CATS = ["Lu","Ll","Lt","Lm","Lo","Mn","Mc","Me","Nd","Nl","No","Pc","Pd","Ps","Pe","Pi","Pf",
              "Po","Sm","Sc","Sk","So","Zs","Zl","Zp","Cc","Cf","Co","Cn"];  // Cs cannot be UTF-8
const byCat = Object.fromEntries(CATS.map((c) => [c, []]));
const catRe = CATS.filter((c) => c !== "Cn").map((c) => [c, new RegExp(`^\\p{gc=${c}}$`, "u")]);
for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  if (after14(cp)) continue;
  const s = String.fromCodePoint(cp);
  let cat = "Cn";
  for (const [c, re] of catRe) if (re.test(s)) { cat = c; break; }
  // Unassigned (Cn) only from ranges still unassigned in Unicode 17 and never assigned since.
  byCat[cat].push(cp);
}
const contexts = [
  (x) => x, (x) => `a${x}b`, (x) => ` ${x}`, (x) => `${x} `, (x) => `A${x}${x}z`,
  (x) => `1${x}2`, (x) => `'s${x}`, (x) => `${x}'ll`, (x) => `\n${x}\n`, (x) => `.${x}.`,
  (x) => `Hello ${x}world`, (x) => `${x}${x}${x}`, (x) => `  ${x}  x`, (x) => `${x}\r\n`,
];
for (const c of CATS) {
  const pool = byCat[c];
  // Contiguous slices cover whole blocks' worth of each category, samples spread over all.
  for (let i = 0; i < 40; i++) {
    const n = randint(1, 6);
    const cps = repeat(n, () => pick(pool));
    const x = String.fromCodePoint(...cps);
    add(`gc:${c}`, pick(contexts)(x));
  }
  for (let i = 0; i < 4; i++) {
    const start = randint(0, Math.max(0, pool.length - 200));
    add(`gc:${c}:slice`, String.fromCodePoint(...pool.slice(start, start + 200)));
  }
}

// ---------------------------------------------------------------- 2. whitespace
const WS = [" ", "\t", "\n", "\r", "\r\n", "\u000b", "\u000c", "\u0085", "\u00a0", "\u1680",
            "\u2000", "\u2007", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
            "\u200b", "\u180e", "\ufeff"];
for (let n = 1; n <= 40; n++) {
  add("ws:spaces", " ".repeat(n));
  add("ws:spaces-word", "a" + " ".repeat(n) + "b");
  add("ws:spaces-trailing", "word" + " ".repeat(n));
  add("ws:crlf", "x" + "\r\n".repeat(n) + "y");
}
for (let i = 0; i < 200; i++) {
  const parts = repeat(randint(1, 12), () => (rand() < 0.6 ? pick(WS) : pick(["a", "Bc", "1", "!", "'s", "中", "é", "-", "//", "👍"])));
  add("ws:mix", parts.join(""));
}
add("ws:nl-spaces", "a\n   \n\n  \t\n b");
add("ws:trail-nl", "line1  \n  line2\t\t\n\n");
add("ws:only-tabs", "\t\t\t\t");
add("ws:cr-only", "a\rb\r\rc\r");

// ---------------------------------------------------------------- 3. contractions
const CONTR = ["s", "t", "re", "ve", "m", "ll", "d"];
const caseVariants = (s) => {
  const out = new Set();
  const n = s.length;
  for (let mask = 0; mask < 1 << n; mask++) {
    out.add([...s].map((ch, i) => (mask & (1 << i) ? ch.toUpperCase() : ch)).join(""));
  }
  return [...out];
};
const APOS = ["'", "\u2019"];
for (const c of CONTR) {
  for (const v of caseVariants(c)) {
    for (const ctx of [(x) => `it${x}`, (x) => `IT${x}`, (x) => `${x}`, (x) => ` ${x} `, (x) => `9${x}`,
                       (x) => `Don${x}t`, (x) => `O${x}Neil`, (x) => `word${x}word`, (x) => `éa${x}`, (x) => `日本${x}`]) {
      add("contraction", ctx(`'${v}`));
    }
    add("contraction:curly", `it\u2019${v} and IT\u2019${v}`);
  }
}
for (const s of ["I'M", "YOU'LL", "WE'VE", "She'S", "they'RE", "HE'd", "ſ'ſ", "it'ſ", "'ſ", "\u017f",
                 "don't", "DON'T", "can'T", "'", "''", "'''s", "it''s", "rock'n'roll", "y'all'd've",
                 "'re'", "'LL'll", "x'ss", "'s's's", "Ünïcödé's", "ΟΔΥΣΣΕΥΣ'S", "İstanbul'da"]) {
  add("contraction:misc", s);
  add("contraction:misc", `${s} ${s.toLowerCase()} ${s.toUpperCase()}`);
}

// ---------------------------------------------------------------- 4. digits
for (let n = 1; n <= 10; n++) {
  const d = repeat(n, (i) => String((i + 1) % 10)).join("");
  add("digits", d);
  add("digits", `x${d}y`);
  add("digits", ` ${d} `);
  add("digits", `${d}.${d}`);
  add("digits", `-${d},${d}`);
  add("digits:arabic-indic", String.fromCodePoint(...repeat(n, (i) => 0x660 + (i % 10))));
  add("digits:devanagari", String.fromCodePoint(...repeat(n, (i) => 0x966 + (i % 10))));
  add("digits:fullwidth", String.fromCodePoint(...repeat(n, (i) => 0xff10 + (i % 10))));
  add("digits:mixed-scripts", `1${String.fromCodePoint(0x661)}2${String.fromCodePoint(0x967)}3`.repeat(n));
}
for (let i = 0; i < 60; i++) {
  add("digits:random", repeat(randint(1, 8), () => String(randint(0, 10 ** randint(1, 12)))).join(pick(["", " ", ",", ".", "-", "/", ":", "e", "x"])));
}
add("digits:roman", "Ⅻ ⅻ ↂ 〇 ½ ¾ ² ³ ⁴ ₅ ① ⑳ 𝟙𝟚𝟛");

// ---------------------------------------------------------------- 5. code and URLs
const CODE = [
  "def f(x):\n    return x**2 + 1  # square\n",
  "int main(int argc, char** argv) {\n\tprintf(\"%d\\n\", argc);\n\treturn 0;\n}\n",
  "const re = /^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@example\\.com$/i;",
  "SELECT id, content FROM messages WHERE created_at > now() - interval '1 day' ORDER BY id LIMIT 10;",
  "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"],\"dimensions\":1536}",
  "<div class=\"x\" data-id='42'>&nbsp;&lt;tag&gt;</div>",
  "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); }",
  "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done\n",
  "    if (a && b || !c) { x += y << 2; } else { y -= x >> 1; }",
  "template <typename T> concept Hashable = requires(T a) { { std::hash<T>{}(a) } -> std::convertible_to<std::size_t>; };",
  "```python\nimport numpy as np\nprint(np.arange(10).reshape(2, 5))\n```",
  "| a | b |\n|---|---|\n| 1 | 2 |\n",
  "// TODO: fix\n/* multi\n   line */\n",
  "x=1;y=2;z=x+y;print(z)",
  "    \n    \n\tindented\n\t\tmore\n",
  "git commit -m \"fix: don't crash on 'empty' input\" && git push origin HEAD:refs/for/main",
  "C:\\Users\\name\\AppData\\Local\\Temp\\file (1).txt",
  "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
  "$ curl -H 'Authorization: Bearer sk-xxxx' https://api.openai.com/v1/embeddings",
  "a_b_c __init__ CONSTANT_VALUE camelCaseName PascalCaseName kebab-case-name",
  "0x7fffffff 0b1010 1e-9 3.14159f 1_000_000 0o755",
  "=> -> <= >= != == === !== ++ -- ** // ::",
];
const URLS = [
  "https://example.com/path/to/page?query=1&other=two#frag",
  "http://user:pass@host.example.org:8080/a/b/c.html",
  "ftp://ftp.example.com/pub/file.tar.gz",
  "https://www.google.com/search?q=tiktoken+bpe&oq=tik&aqs=chrome..69i57",
  "mailto:someone@example.com?subject=Hello%20World",
  "https://en.wikipedia.org/wiki/Byte_pair_encoding",
  "https://münchen.de/straße?ä=ö",
  "www.example.co.uk/index.php?id=123&lang=en",
  "https://github.com/openai/tiktoken/blob/main/src/lib.rs#L100-L120",
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
];
for (const c of CODE) { add("code", c); add("code:indent", c.replace(/^/gm, "        ")); add("code:crlf", c.replace(/\n/g, "\r\n")); }
for (const u of URLS) { add("url", u); add("url:in-text", `See ${u}, or (${u}).`); add("url:upper", u.toUpperCase()); }
for (let i = 0; i < 80; i++) {
  add("code:random", repeat(randint(3, 30), () => pick(["foo", "Bar", "_", "(", ")", "{", "}", "[", "]", ";", ",", ".", "->", "::", " ", "  ", "\n", "\t", "=", "==", "'", "\"", "`", "#", "//", "/*", "*/", "0", "42", "3.5", "x", "i++", "&&", "||", "!", "?", ":", "@", "$", "%", "^", "~", "\\", "\\n", "</", "/>"])).join(""));
}

// ---------------------------------------------------------------- 6. emoji
const EMOJI = ["😀", "😂", "🥲", "👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🧑🏽‍💻",
               "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵", "🇪🇺", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "1️⃣", "#️⃣", "©️", "™️", "❤️", "❤", "☺️", "✌🏿",
               "🫠", "🦀", "🐍", "🤷‍♀️", "🙋🏾‍♂️", "👁️‍🗨️", "🧔‍♂️", "🫱🏼‍🫲🏿", "💯", "🔥", "✨", "🎉"];
for (const e of EMOJI) {
  add("emoji", e);
  add("emoji:ctx", `I ${e} this${e}${e} ok ${e}!`);
  add("emoji:run", e.repeat(5));
}
for (let i = 0; i < 60; i++) add("emoji:random", repeat(randint(1, 15), () => pick([...EMOJI, " ", "a", "\u200d", "\ufe0f", "🏽", "word", "!"])).join(""));

// ---------------------------------------------------------------- 7. combining marks
for (const base of ["e", "a", "o", "E", "n", "i", " ", "1", "!", "中", "ا", "\n"]) {
  for (const marks of [["\u0301"], ["\u0300", "\u0323"], ["\u0308", "\u0304", "\u030c"], ["\u20dd"], ["\u0489"], ["\u0903"], ["\u0e31"], ["\u05b7"], ["\u064e", "\u0651"]]) {
    add("marks", base + marks.join(""));
    add("marks:word", `caf${base}${marks.join("")}s word${marks.join("")}`);
  }
}
const zalgo = (s) => [...s].map((ch) => ch + String.fromCodePoint(...repeat(randint(0, 12), () => randint(0x300, 0x36f)))).join("");
for (let i = 0; i < 20; i++) add("marks:zalgo", zalgo("Hello, World! it's zalgo"));
add("marks:nfd", "Crème brûlée à la française — ÅngstrÖm".normalize("NFD"));
add("marks:nfc", "Crème brûlée à la française — ÅngstrÖm".normalize("NFC"));
add("marks:hangul-jamo", "한국어".normalize("NFD") + " " + "한국어");

// ---------------------------------------------------------------- 8. scripts
const SCRIPTS = {
  cjk: "我们今天去公园散步，天气很好。人工智能正在改变世界！「引用」『二重』",
  japanese: "東京は日本の首都です。カタカナとひらがなを混ぜる：コンピューター、ありがとう。ｶﾀｶﾅ半角",
  korean: "안녕하세요, 세계! 오늘 날씨가 좋네요. 대한민국 123",
  arabic: "مرحبا بالعالم! اللغة العربية جميلة جداً. ١٢٣٤٥ \u200fنص\u200f",
  hebrew: "שלום עולם! עִבְרִית עם ניקוד. 2024 ״ציטוט״",
  devanagari: "नमस्ते दुनिया! हिन्दी भाषा बहुत सुंदर है। क्षत्रिय ज्ञान श्री ०१२",
  thai: "สวัสดีชาวโลก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ ๑๒๓",
  cyrillic: "Привет, мир! Съешь же ещё этих мягких французских булок. ЁЁЁ",
  greek: "Γειά σου Κόσμε! ΟΔΥΣΣΕΥΣ ὁ πολύτροπος ς σ Σ",
  armenian: "Բարեւ աշխարհ",
  georgian: "გამარჯობა მსოფლიო",
  tamil: "வணக்கம் உலகம்",
  bengali: "হ্যালো বিশ্ব",
  ethiopic: "ሰላም ልዑል",
  tibetan: "བཀྲ་ཤིས་བདེ་ལེགས།",
  mongolian: "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ",
  khmer: "សួស្តី​ពិភពលោក",
  math: "∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x|; ∑ᵢ aᵢ ≠ ∏ⱼ bⱼ ≈ ∞ 𝔸𝕓𝒸",
  mixed: "Hello世界مرحباשלוםनमस्तेสวัสดี123abc",
};
for (const [k, s] of Object.entries(SCRIPTS)) {
  add(`script:${k}`, s);
  add(`script:${k}:x3`, `${s}\n${s} ${s}`);
  add(`script:${k}:latin`, `The word "${s.slice(0, 12)}" means hello's.`);
  for (let i = 0; i < 6; i++) {
    const cps = [...s];
    const a = randint(0, cps.length - 1);
    add(`script:${k}:slice`, cps.slice(a, a + randint(1, 20)).join(""));
  }
}

// ---------------------------------------------------------------- 9. special-token text
for (const s of ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>",
                 "<|im_start|>user\nhi<|im_end|>", "text<|endoftext|>more", "<|endoftext|><|endoftext|>", "< |endoftext| >"]) {
  add("special-text", s);
}

// ---------------------------------------------------------------- 10. random fuzz from tricky atoms
const ATOMS = ["a", "Z", "the", " the", "The", "THE", "'s", "'S", "'ll", "'LL", "'Ve", " ", "  ", "\t", "\n", "\r\n",
               "\n\n", "0", "12", "345", "6789", ".", ",", "!", "?", "...", "—", "-", "_", "/", "//", "\\", "(", ")",
               "é", "É", "ß", "ǅ", "ʰ", "ſ", "İ", "ı", "中", "文", "日", "本", "ア", "한", "ا", "ש", "ह", "ि", "ก", "ั",
               "😀", "👍🏽", "👨‍👩‍👧", "\u0301", "\u200d", "\ufe0f", "\u00a0", "\u3000", "\u2028", "\u0085", "\ue000",
               "\u{10ffff}", "\ufffd", "\u0000", "\u001b", "€", "$", "£", "¥", "٣", "Ⅻ", "½", "http://a.b/c", "@user", "#tag"];
for (let i = 0; i < 700; i++) add("fuzz", repeat(randint(1, 40), () => pick(ATOMS)).join(""));
for (let i = 0; i < 100; i++) add("fuzz:bmp", String.fromCodePoint(...repeat(randint(1, 30), () => {
  for (;;) { const cp = randint(0, 0xffff); if ((cp < 0xd800 || cp > 0xdfff) && !after14(cp)) return cp; }
})));
for (let i = 0; i < 60; i++) add("fuzz:astral", String.fromCodePoint(...repeat(randint(1, 20), () => {
  for (;;) { const cp = randint(0x10000, 0x10ffff); if (!after14(cp)) return cp; }
})));

// ---------------------------------------------------------------- 11. long words and 100k-character strings
const letters = "abcdefghijklmnopqrstuvwxyz";
for (const n of [100, 500, 1000, 2000, 5000]) {
  add("long:word", repeat(n, () => pick([...letters])).join(""));
  add("long:word-upper", repeat(n, () => pick([...letters]).toUpperCase()).join(""));
  add("long:a", "a".repeat(n));
  add("long:digits", repeat(n, () => String(randint(0, 9))).join(""));
  add("long:punct", repeat(n, () => pick([..."!@#$%^&*()_+-=[]{};:,.<>/?|~"])).join(""));
  add("long:cjk", String.fromCodePoint(...repeat(n, () => randint(0x4e00, 0x9fa5))));
}
const PROSE = ["The quick brown fox jumps over the lazy dog.", "It's 3:45 p.m. and we've got 12,345 items.",
               "Я люблю программирование.", "我喜欢编程。", "مرحبا!", "😀👍🏽", "x = f(y) + 2;", "\n\n", "  ", "\r\n",
               "https://example.com/a?b=c", "naïve café résumé", "ÀÉÎÕÜ", "'LL 'S 'VE"];
const long = (n, f) => {  // exactly n code points
  const cps = [];
  while (cps.length < n) for (const ch of f()) cps.push(ch);
  return cps.slice(0, n).join("");
};
add("long:100k-prose", long(100000, () => pick(PROSE) + pick([" ", "", "\n"])));
add("long:100k-spaces", " ".repeat(100000));
add("long:100k-newlines-mix", long(100000, () => pick([" ", "\n", "\r\n", "\t", "  \n"])));
add("long:100k-digits", long(100000, () => String(randint(0, 9))));
add("long:100k-emoji", long(100000, () => pick(EMOJI)));
add("long:100k-cjk", long(100000, () => String.fromCodePoint(randint(0x4e00, 0x9fa5))));
add("long:100k-words", long(100000, () => repeat(randint(1, 12), () => pick([...letters])).join("") + " "));
add("long:20k-word", repeat(20000, () => pick([...letters])).join(""));

// ---------------------------------------------------------------- encode and write
const cl = get_encoding("cl100k_base");
const o2 = get_encoding("o200k_base");
const varint = [];
const pushVar = (v) => { while (v >= 0x80) { varint.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); } varint.push(v); };
let lines = "";
for (const r of records) {
  // Lone surrogates cannot appear (built from code points), so UTF-8 round trip is exact.
  lines += JSON.stringify(r) + "\n";
  for (const enc of [cl, o2]) {
    const ids = enc.encode_ordinary(r.text);  // special-token text is ordinary text
    pushVar(ids.length);
    for (const id of ids) pushVar(id);
  }
}
cl.free();
o2.free();
const header = Buffer.from("LENSTOK1", "ascii");
const count = Buffer.alloc(4);
count.writeUInt32LE(records.length);
const bin = Buffer.concat([header, count, Buffer.from(varint)]);
mkdirSync(new URL("./data/", import.meta.url), { recursive: true });
writeFileSync(new URL("./data/corpus.jsonl", import.meta.url), lines);
writeFileSync(new URL("./data/expected.bin", import.meta.url), bin);
const h = (b) => createHash("sha256").update(b).digest("hex").slice(0, 16);
console.log(`${records.length} strings, corpus ${lines.length} chars (${h(lines)}), expected ${bin.length} bytes (${h(bin)})`);
