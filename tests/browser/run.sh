#!/usr/bin/env bash
# The browser test's driver (ctest label `browser`): checks for Chromium, Node and npm, installs
# puppeteer-core from the committed package-lock.json with `npm ci` into WORK_DIR (once per lock
# file), then runs browser_test.js there. Missing tools (or a failed `npm ci`) skip the test with
# exit status 77; under CI=true they fail it instead.
#
#   run.sh SOURCE_DIR WORK_DIR LIVE_DASHBOARD
set -euo pipefail
src=$1 work=$2 exe=$3

skip() {
  if [ "${CI:-}" = true ]; then
    echo "browser test: FAILED: $1 (CI=true, so this is not skipped)" >&2
    exit 1
  fi
  echo "browser test: SKIPPED: $1"
  exit 77
}

chromium=${AURORA_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "no Chromium at $chromium (apt-get install --no-install-recommends chromium, or set AURORA_CHROMIUM)"
command -v node > /dev/null || skip "no node (apt-get install --no-install-recommends nodejs npm)"
command -v npm > /dev/null || skip "no npm (apt-get install --no-install-recommends npm)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  skip "node $(node --version) is too old: puppeteer-core 24 needs Node 18 or later"

mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src/browser_test.js" "$work/"
stamp=$work/node_modules/.aurora-package-lock.json
if ! cmp -s "$src/package-lock.json" "$stamp"; then
  (cd "$work" && npm ci --no-audit --no-fund) || skip "npm ci failed in $work (no network?)"
  cp "$src/package-lock.json" "$stamp"
fi
exec node "$work/browser_test.js" "$exe" "$work/live_dashboard.png"
