#!/usr/bin/env bash
# Mutation testing of refqt/quant, refqt/fqt and refqt/stats with mutmut (not a CI step).
#
#   pip install mutmut                      # not a dependency of refqt
#   bash scripts/mutation.sh                # every mutant (hours on 2 cores)
#   bash scripts/mutation.sh 'refqt.stats*' # a subset, by mutmut's mutant-name glob
#
# The configuration ([tool.mutmut] in pyproject.toml) names the code to mutate and the
# tests to run. mutmut works in a copy of the tracked files (MUTATION_DIR, default
# /tmp/refqt-mutation), so the repository is never touched; a rerun there only tests
# mutants whose code or tests changed. Results: `cd $MUTATION_DIR && mutmut results`
# (survivors) and `mutmut show NAME` (the diff of one mutant).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${MUTATION_DIR:-/tmp/refqt-mutation}"
mkdir -p "$work"
# refresh the copy: tracked and untracked-but-not-ignored files, as they are now
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$work"
cd "$work"
# The mutated copy must win over the plain copy and an editable install: the console
# script (not `python -m mutmut`, which puts the current folder first on sys.path).
# The folder must exist before mutmut starts, or Python caches "nothing to import there"
# and the first run collects no test for any mutant.
mkdir -p "$work/mutants"
export PYTHONPATH="$work/mutants"
nice -n 10 mutmut run --max-children "${MUTATION_JOBS:-2}" "$@"
mutmut results
