#!/usr/bin/env bash
# The library's folder graph read off the compiled assembly (no cycles between folders, none between the files of a
# folder) and its public surface (types and members a library user sees), as the architecture tests check them.
#   scripts/architecture.sh                  this checkout's build
#   scripts/architecture.sh OTHER_CHECKOUT   another checkout's build, e.g. a git worktree of an older commit
#                                            (build it first: dotnet build OTHER_CHECKOUT/src/Strata -c Release)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
STRATA_SKIP_BUILD=1 scripts/bootstrap.sh >/dev/null
dotnet build tests/Strata.Tests -c Release -nologo -v quiet -clp:ErrorsOnly >&2
if [ $# -gt 0 ]; then
  other="$(cd "$1" && pwd)"
  export STRATA_ASSEMBLY="$other/src/Strata/bin/Release/net10.0/Strata.dll" STRATA_SOURCE_ROOT="$other"
  [ -f "$STRATA_ASSEMBLY" ] || { echo "$STRATA_ASSEMBLY: not built" >&2; exit 1; }
fi
dotnet test tests/Strata.Tests -c Release --no-build -nologo -v quiet --filter "FullyQualifiedName~ArchitectureTests.The_graph_is_written_for_the_script" >/dev/null
cat artifacts/architecture.txt
