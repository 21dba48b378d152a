#!/usr/bin/env bash
# Builds the .deb with CPack from a finished build tree, unpacks it into a scratch root
# (dpkg -x: nothing is installed on the machine) and uses lens-embed from the unpacked
# paths only: --version, tokens (rank tables found next to the installed binary, not in
# the source tree), a short run on SQLite, and `systemd-analyze verify` of the packaged
# unit file.
# usage: package_test.sh BUILD_DIR SAMPLE_CORPUS_BINARY
set -euo pipefail
build=${1:?build dir}
corpus=${2:?lens-sample-corpus binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "package_test: FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/out/lens-embed_*.deb) || fail "no .deb produced"
# Into a variable first: `grep -q` closing the pipe early would fail the pipeline (pipefail).
control=$(dpkg-deb -I "$deb")
grep -q '^ Depends: .*libpq5' <<<"$control" || fail "Depends does not name libpq5"
root="$work/root"
dpkg -x "$deb" "$root"
bin="$root/usr/bin/lens-embed"
for f in usr/bin/lens-embed usr/share/man/man1/lens-embed.1 usr/share/bash-completion/completions/lens-embed \
  usr/lib/systemd/system/lens-embed.service usr/share/lens-embed/tokenizer/cl100k_base.tiktoken \
  usr/share/lens-embed/tokenizer/o200k_base.tiktoken usr/share/doc/lens-embed/lens-embed.env.example; do
  [ -e "$root/$f" ] || fail "$f is not in the package"
done
grep -q 'not stripped' <<<"$(file "$bin")" && fail "the packaged binary is not stripped"

cd "$work"
version=$("$bin" --version) || fail "--version exited $?"
[[ "$version" =~ ^lens-embed\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "--version printed '$version'"

# The rank tables must come from the package: the log names the file it loaded.
count=$(printf 'Hello, world!' | "$bin" tokens --model text-embedding-3-large --verbose 2>"$work/tokens.err") ||
  { cat "$work/tokens.err"; fail "tokens exited $?"; }
[ "$count" = "4" ] || fail "tokens counted '$count', expected 4"
grep -q "$root/usr/share/lens-embed/tokenizer/cl100k_base.tiktoken" "$work/tokens.err" ||
  { cat "$work/tokens.err"; fail "tokens did not load the packaged rank table"; }

# A short run from the installed binary on the embedded default.
"$corpus" --sqlite "$work/lens.db" --conversations 50 --seed 7 >/dev/null
"$bin" run --db "sqlite:$work/lens.db" --quiet >/dev/null || fail "run exited $?"
"$bin" status --db "sqlite:$work/lens.db" --json | grep -q '"pending": *0' || fail "status shows pending work"

# The unit file, pointed at the unpacked binary (systemd-analyze checks that it exists).
sed "s#/usr/bin/lens-embed#$bin#" "$root/usr/lib/systemd/system/lens-embed.service" >"$work/lens-embed.service"
out=$(systemd-analyze verify --man=no "$work/lens-embed.service" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
echo "package_test: ok ($(basename "$deb"))"
