#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in Release,
# generates a sample Lens corpus into a SQLite file, embeds it with the offline
# local-hash provider, then shows `status` and a `search`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
echo "== building (Release)"
"$root/scripts/build.sh" "$root/build" Release -DLENS_BUILD_TESTS=OFF -DLENS_BUILD_BENCH=OFF >/dev/null
bin="$root/build/apps/lens-embed/lens-embed"
work="$root/demo"
mkdir -p "$work"
cd "$work"
rm -f lens.db lens.db-wal lens.db-shm
echo "== generating a sample corpus (5,000 conversations) into $work/lens.db"
"$root/build/tools/sample-corpus/lens-sample-corpus" --sqlite lens.db --conversations 5000
echo "== lens-embed init --create"
"$bin" init --create    # lens-embed creates a database file only when asked
echo "== lens-embed run"
"$bin" run
echo "== lens-embed status"
"$bin" status
echo "== lens-embed search \"explain photosynthesis to me\""
"$bin" search -k 3 "explain photosynthesis to me"
echo
echo "local-hash is lexical, not semantic: it matches shared words and spellings."
echo "For meaning, run with --provider supermind (or openai) and an API key; see README."
