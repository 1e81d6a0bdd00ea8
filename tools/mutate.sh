#!/usr/bin/env bash
# `make mutate`: mutation testing (mutmut 2) of the modules where a wrong line ships a wrong result, each against
# the fast tests that guard it. Slow, so not part of `make test`. Prints each module's score and survivors.
#   tools/mutate.sh                          # every module below, one at a time
#   tools/mutate.sh -j 2                     # two modules at once (one core each)
#   tools/mutate.sh carscope/export/parity.py         # one of them
#   tools/mutate.sh carscope/crawler/frontier.py=tests/crawler/test_crawl_showroom.py   # against other tests
#   MUTATE_REV=943e92e tools/mutate.sh ...   # the code and tests of a commit (a "before" score)
#   MUTATE_LOGS=DIR tools/mutate.sh ...      # also keep each module's log in DIR/<module>.log
# Each module is mutated in its own scratch copy, never in the checkout: mutmut 2 writes its mutants into the files
# it mutates, and a mutant must never be committed or left behind. The copy is taken once, at the start: the
# working tree (tracked and untracked files, not the ignored ones), or the commit MUTATE_REV. So the checkout stays
# usable while it runs, and uncommitted tests count.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
MUTMUT=${MUTMUT:-$ROOT/.venv/bin/mutmut}
# module -> the tests that guard it
declare -A TESTS=(
  [carscope/export/parity.py]="tests/export/test_parity_unit.py"
  [carscope/export/ood.py]="tests/export/test_ood_unit.py"
  [carscope/export/bundle.py]="tests/export/test_bundle_unit.py"
  [carscope/serve/imageio.py]="tests/serve/test_imageio.py"
  [carscope/serve/formparser.py]="tests/serve/test_formparser.py"
  [carscope/serve/app.py]="tests/serve/test_app.py"
  [carscope/crawler/politeness.py]="tests/crawler/test_politeness_unit.py"
  [carscope/crawler/frontier.py]="tests/crawler/test_frontier.py"
  [carscope/train/evaluation.py]="tests/train/test_evaluation.py"
  [carscope/train/data.py]="tests/train/test_split.py"
)
# module -> the only functions mutated (the gate in a module that also does other work); unset: all of it
declare -A ONLY=(
  [carscope/export/bundle.py]="sha256_file load Bundle.verify ModelEntry.verify ModelEntry._variant ModelEntry.ood_threshold OodScorer.load"
  [carscope/train/data.py]="split_table"
  [carscope/train/evaluation.py]="expected_calibration_error fit_temperature topk_accuracy"
  [carscope/serve/app.py]="_read_upload create_app InMemoryRequest._get_file_stream _install_hooks._http_error _install_hooks._rejected"
)
# the order `make mutate` runs them in
ORDER=(carscope/export/parity.py carscope/export/ood.py carscope/export/bundle.py carscope/serve/imageio.py
       carscope/serve/formparser.py carscope/serve/app.py
       carscope/crawler/politeness.py carscope/crawler/frontier.py carscope/train/evaluation.py carscope/train/data.py)

jobs=1
if [ "${1:-}" = "-j" ]; then jobs=$2; shift 2; fi
modules=()
for arg in "$@"; do
  if [[ $arg == *=* ]]; then TESTS[${arg%%=*}]=${arg#*=}; arg=${arg%%=*}; fi
  modules+=("$arg")
done
[ ${#modules[@]} -eq 0 ] && modules=("${ORDER[@]}")
for m in "${modules[@]}"; do
  [ -n "${TESTS[$m]:-}" ] || { echo "mutate: no tests registered for $m (known: ${ORDER[*]})" >&2; exit 2; }
done
scratch=$(mktemp -d "${TMPDIR:-/tmp}/carscope-mutate.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/tree"
if [ -n "${MUTATE_REV:-}" ]; then
  code=$(git rev-parse --short "$MUTATE_REV")
  git archive "$MUTATE_REV" | tar -xf - -C "$scratch/tree"
else
  code=$(git describe --always --dirty)
  git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$scratch/tree"
fi
echo "mutate: code $code, $("$MUTMUT" version 2>/dev/null || echo 'mutmut ?')"

slug() { local m=${1#carscope/}; echo "${m//\//_}"; }  # carscope/export/parity.py -> export_parity.py

mutate_one() {  # module -> its report on stdout
  local m=$1 t=${TESTS[$1]} dir
  dir="$scratch/$(slug "$m")"
  cp -a "$scratch/tree" "$dir"
  # the function filter, read by mutmut from the current directory
  cat > "$dir/mutmut_config.py" <<'PYEOF'
import ast, os

_ONLY = os.environ.get("MUTATE_ONLY", "").split()
_lines: dict[str, set[int]] = {}


def _allowed(filename: str) -> set[int]:
    if filename not in _lines:
        tree, keep = ast.parse(open(filename).read()), set()

        def walk(node, prefix=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = prefix + child.name
                    if name in _ONLY or child.name in _ONLY and not prefix:
                        keep.update(range(child.lineno - 1, child.end_lineno))  # 0-based, as mutmut counts
                    walk(child, name + ".")

        walk(tree)
        _lines[filename] = keep
    return _lines[filename]


def pre_mutation(context):
    if _ONLY and context.current_line_index not in _allowed(context.filename):
        context.skip = True
PYEOF
  (
    cd "$dir"
    echo "== $m (tests: $t${ONLY[$m]:+; only: ${ONLY[$m]}})"
    MUTATE_ONLY="${ONLY[$m]:-}" "$MUTMUT" run --paths-to-mutate "$m" --tests-dir "$(dirname "$t")" \
      --runner "$PY -m pytest -x -q -p no:cacheprovider $t" --simple-output >mutmut-run.log 2>&1 || true
    if [ ! -s .mutmut-cache ]; then echo "$m: mutmut did not run:"; tail -5 mutmut-run.log; exit 0; fi
    "$PY" - "$m" <<'PYEOF'
import sqlite3, sys
con = sqlite3.connect(".mutmut-cache")
rows = dict(con.execute("SELECT status, COUNT(*) FROM Mutant GROUP BY status").fetchall())
skipped = rows.get("skipped", 0)
total = sum(rows.values()) - skipped
killed = rows.get("ok_killed", 0) + rows.get("ok_suspicious", 0)  # suspicious: the tests failed, slowly
print(f"{sys.argv[1]}: {killed}/{total} mutants killed ({killed / max(total, 1):.0%}); by status {rows}"
      + (f" ({skipped} outside the functions mutated)" if skipped else ""))
PYEOF
    # each survivor's diff (and each timeout's: a mutant that made the tests hang), so that a log says what to triage
    for id in $("$PY" -c "import sqlite3; print(' '.join(str(r[0]) for r in sqlite3.connect('.mutmut-cache').execute(\"SELECT id FROM Mutant WHERE status IN ('bad_survived', 'bad_timeout')\")))"); do
      "$MUTMUT" show "$id" 2>/dev/null | grep -E '^[-+][^-+]' | sed "s/^/  #$id /" || true
    done
  )
}

run_logged() {
  local m=$1 log
  log="$scratch/$(slug "$m").log"
  mutate_one "$m" >"$log" 2>&1
  if [ -n "${MUTATE_LOGS:-}" ]; then mkdir -p "$MUTATE_LOGS"; cp "$log" "$MUTATE_LOGS/"; fi
}

pids=()
for m in "${modules[@]}"; do
  run_logged "$m" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
done
wait "${pids[@]}" || true
for m in "${modules[@]}"; do cat "$scratch/$(slug "$m").log"; done
