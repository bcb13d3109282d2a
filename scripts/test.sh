#!/usr/bin/env bash
# Set-up (scripts/bootstrap.sh), then the whole test suite. Ends with one line "N passed, N failed" read from the
# test results (TRX), which CI reads. Extra arguments go to dotnet test (e.g. --filter "FullyQualifiedName~Parity").
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh || exit 1
export STRATA_HOME="$root"        # as ./strata does: prepared corpora and substrate caches under the repository's data/
rm -rf "${TMPDIR:-/tmp}/strata-tests"   # scratch left by an earlier run that did not end cleanly
results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"
dotnet test tests/Strata.Tests/Strata.Tests.csproj -c Release --no-build -nologo \
  --blame --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory "$results" "$@" \
  | tee "$results/console.log"
status=${PIPESTATUS[0]}
rm -rf "${TMPDIR:-/tmp}/strata-tests"   # the tests' scratch (the test host does not always run its own cleanup)
trx="$results/results.trx"
if [ -f "$trx" ]; then
  passed=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' passed="[0-9]*"' | grep -o '[0-9]*')
  failed=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' failed="[0-9]*"' | grep -o '[0-9]*')
  if [ $status -ne 0 ] && [ "${failed:-0}" = 0 ]; then
    # the run stopped before its end (a crashed test host): --blame names the test in flight above
    echo "the test run was aborted before its end; the results hold only the tests that finished"
    failed=1
  fi
  if [ "${failed:-0}" != 0 ]; then
    # again, next to the summary, so that a log's tail names what failed: each failed test and its error message
    echo "failed:"
    awk '/^ +Failed [A-Za-z]/ { n = 12 } /^ +Stack Trace:/ { n = 0 } n > 0 { print; n-- }' "$results/console.log"
  fi
  echo "${passed:-0} passed, ${failed:-0} failed"
else
  echo "0 passed, 1 failed"
  [ $status -ne 0 ] || status=1
fi
exit $status
