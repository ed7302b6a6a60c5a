#!/usr/bin/env bash
# Creates .venv/ in the repository and installs everything mmfcclip needs,
# from the package registries only. Idempotent: a finished environment whose
# inputs did not change is left alone (stamp file). Each step logs to
# .venv/logs/<step>.log; a failing step prints its log tail and a hint.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
CONSTRAINTS=$ROOT/requirements/constraints.txt
STAMP=$VENV/.mmfcclip-env
# torch/torchvision: PyPI's matching pair. `===` (exact string) keeps pip from
# picking a `+cpu` local build that some machines offer through find-links:
# it does not match PyPI's torchvision (`torchvision::nms does not exist`).
TORCH_SPEC=${TORCH_SPEC:-torch===2.13.0 torchvision==0.28.0}

inputs_hash() {
  cat requirements/*.txt setup.py tools/misc/setup_env.sh | sha256sum | cut -c1-16
  echo "$TORCH_SPEC"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(inputs_hash)" ] \
    && "$VENV/bin/python" -c "import mmfcclip" >/dev/null 2>&1; then
  echo "[env] $VENV is up to date."
  exit 0
fi

mkdir -p "$VENV/logs" 2>/dev/null || true
step() {  # step NAME COMMAND...
  local name=$1; shift
  echo "[env] $name ..."
  mkdir -p "$VENV/logs"
  if ! "$@" >"$VENV/logs/$name.log" 2>&1; then
    echo "[env] FAILED: $name (command: $*)" >&2
    echo "[env] last lines of $VENV/logs/$name.log:" >&2
    tail -n 25 "$VENV/logs/$name.log" >&2
    case $name in
      mmcv) echo "[env] hint: mmcv 2.1.0 has no PyPI wheel and is compiled" \
        "against the installed torch (needs gcc, python headers," \
        "setuptools<82; 25-40 min on 2 cores)." >&2 ;;
      venv) echo "[env] hint: install Python 3.11 with the venv module" \
        "(e.g. apt-get install python3.11-venv)." >&2 ;;
    esac
    exit 1
  fi
}

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  echo "[env] creating $VENV with $($PY --version 2>&1)"
  "$PY" -m venv "$VENV" || { echo "[env] FAILED: $PY -m venv $VENV" >&2; exit 1; }
fi
PIP="$VENV/bin/python -m pip"
# pip < 25.3 and setuptools < 80 keep `pip install -e .` a legacy develop
# install (egg-link), the only editable kind openmim 0.3.9 can locate.
step tooling $PIP install -c "$CONSTRAINTS" 'pip<25.3' 'setuptools>=64,<80' wheel ninja
# shellcheck disable=SC2086
step torch $PIP install -c "$CONSTRAINTS" $TORCH_SPEC
echo "[env] mmcv 2.1.0 (built from source against torch if no wheel is cached: 25-40 min on 2 cores) ..."
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} step mmcv $PIP install -c "$CONSTRAINTS" --no-build-isolation 'mmcv==2.1.0'
# web.txt: the web page (demo/web_demo.py, Gradio) and its browser test
# (selenium; Chromium itself is a system package, see docs/inference.md).
step runtime $PIP install -c "$CONSTRAINTS" -r requirements/runtime.txt -r requirements/tests.txt -r requirements/web.txt
step mmfcclip $PIP install -c "$CONSTRAINTS" --no-build-isolation --no-deps -e .
step check "$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmseg.models, open_clip, mmfcclip; print('mmfcclip', mmfcclip.__version__)"
inputs_hash > "$STAMP"
echo "[env] ready: $VENV ($("$VENV/bin/python" -c 'import mmfcclip; print("mmfcclip", mmfcclip.__version__)'))"
