#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make test-desktop: the plugin in a real QGIS desktop window under Xvfb, installed from
# the zip that `make package` builds into a fresh profile inside the project
# (.qgis/desktop-profile, never the user's), driven by tests/desktop/desktop_session.py
# (Toolbox, dialogs, batch, modeler, styled map, report). Screenshots go to
# out/screenshots/, the result and QGIS's output to out/desktop/; fails on any Python error in the QGIS message log, on a failed step or
# check, or when QGIS does not finish within LANDCOVER_DESKTOP_TIMEOUT seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh xvfb x11-utils
version="$(sed -n 's/^version=//p' metadata.txt)"
zip="dist/qgis_landcover-$version.zip"
.venv/bin/python scripts/package.py --output "$zip"

profiles="$root/.qgis/desktop-profile"
profile="$profiles/profiles/default"
rm -rf "$profiles"
mkdir -p "$profile/python/plugins" "$profile/QGIS"
# What "Install from ZIP" does: unpack into the profile's plugin folder, then enable.
.venv/bin/python -m zipfile -e "$zip" "$profile/python/plugins/"
cat > "$profile/QGIS/QGIS3.ini" <<'INI'
[PythonPlugins]
qgis_landcover=true
processing=true

[qgis]
checkVersion=false
showTips322=false
allowCrashReporting=false

[core]
NewsFeed\httpsfeedqgisorg\disabled=true
INI

out="$root/out/desktop"
screenshots="$root/out/screenshots"
rm -rf "$out" "$screenshots"
mkdir -p "$out" "$screenshots"
result="$out/result.json"
mkdir -p "$root/.qgis/runtime" && chmod 700 "$root/.qgis/runtime"

# The project's .venv first on PATH: QGIS's Python then imports onnxruntime & co. from it
# (as scripts/qgis_process does).
export PATH="$root/.venv/bin:$PATH" VIRTUAL_ENV="$root/.venv"
export XDG_RUNTIME_DIR="$root/.qgis/runtime"
export LANDCOVER_DESKTOP_ROOT="$root" LANDCOVER_DESKTOP_OUT="$out" \
  LANDCOVER_DESKTOP_RESULT="$result" LANDCOVER_DESKTOP_SCREENSHOTS="$screenshots"
unset QGIS_PLUGINPATH QGIS_CUSTOM_CONFIG_PATH QT_QPA_PLATFORM
started=$(date +%s)
status=0
timeout --kill-after=10 "${LANDCOVER_DESKTOP_TIMEOUT:-300}" \
  xvfb-run -a -s "-screen 0 1600x1000x24" \
  qgis --profiles-path "$profiles" --nologo --noversioncheck --code "$root/tests/desktop/desktop_session.py" \
  > "$out/qgis.log" 2>&1 || status=$?
echo "test-desktop: QGIS ran $(($(date +%s) - started)) s (exit $status); log: $out/qgis.log"

.venv/bin/python - "$result" "$status" <<'PY'
import json
import sys
from pathlib import Path

path, status = Path(sys.argv[1]), int(sys.argv[2])
if not path.exists():
    sys.exit(f"test-desktop: no {path} (QGIS exit {status}: crashed, hung or timed out)")
state = json.loads(path.read_text())
for name, step in state["steps"].items():
    print(f"  {'ok  ' if step['ok'] else 'FAIL'} {name} ({step['seconds']} s)")
for error in state["python_errors"]:
    print(f"  Python error in the message log:\n{error['message']}")
for failure in state["failures"]:
    print(f"  {failure}")
print(f"  screenshots (out/screenshots/): {', '.join(state['screenshots'])}")
# Each check and each step counts once, each Python error as a failure.
outcomes = [c["passed"] for c in state["checks"].values()]
outcomes += [s["ok"] for s in state["steps"].values()]
outcomes += [False] * len(state["python_errors"])
print(f"test-desktop: {sum(outcomes)} passed, {outcomes.count(False)} failed")
sys.exit(0 if state["ok"] and status == 0 else 1)
PY
