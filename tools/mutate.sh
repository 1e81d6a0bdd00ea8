#!/usr/bin/env bash
# `make mutate`: mutation testing (mutmut 2) of the modules where a wrong line ships a wrong result, each against
# the fast tests that guard it. Slow, so not part of `make test`. Prints each module's score and survivors.
#   tools/mutate.sh                      # every module below
#   tools/mutate.sh export/parity.py     # one of them
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MUTMUT=${MUTMUT:-.venv/bin/mutmut}
declare -A TESTS=(
  [export/parity.py]="tests/export/test_parity_unit.py"
  [serve/imageio.py]="tests/serve/test_imageio.py"
  [export/ood.py]="tests/export/test_ood_unit.py"
)
modules=("$@")
[ ${#modules[@]} -eq 0 ] && modules=("${!TESTS[@]}")
# mutmut 2 mutates the files in place: only committed files, so that restoring them from git loses nothing
if ! git diff --quiet HEAD -- "${modules[@]}"; then
  echo "mutate: commit your changes to ${modules[*]} first (mutants are written into the files)" >&2
  exit 2
fi
trap 'rm -f .mutmut-cache; git checkout -- "${modules[@]}" 2>/dev/null || true' EXIT  # never leave a mutant behind
for m in "${modules[@]}"; do
  t=${TESTS[$m]:?no tests registered for $m}
  rm -f .mutmut-cache
  echo "== $m (tests: $t)"
  "$MUTMUT" run --paths-to-mutate "$m" --tests-dir "$(dirname "$t")" \
    --runner "$PY -m pytest -x -q -p no:cacheprovider $t" --simple-output >/dev/null 2>&1 || true
  "$MUTMUT" results 2>&1 | sed -n '/Survived/,$p'
  "$PY" - "$m" <<'PYEOF'
import sqlite3, sys
con = sqlite3.connect(".mutmut-cache")
rows = dict(con.execute("SELECT status, COUNT(*) FROM Mutant GROUP BY status").fetchall())
total = sum(rows.values()); killed = rows.get("ok_killed", 0)
print(f"{sys.argv[1]}: {killed}/{total} mutants killed ({killed / total:.0%}); by status {rows}")
PYEOF
  # each survivor's diff, so that a log says what to triage (the cache is gone once this script exits)
  for id in $("$PY" -c "import sqlite3; print(' '.join(str(r[0]) for r in sqlite3.connect('.mutmut-cache').execute(\"SELECT id FROM Mutant WHERE status = 'bad_survived'\")))"); do
    "$MUTMUT" show "$id" 2>/dev/null | grep -E '^[-+][^-+]' | sed "s/^/  #$id /" || true
  done
done
