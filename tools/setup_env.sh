#!/usr/bin/env bash
# Create (or complete) the project's virtual environment. Safe to re-run: every step checks first.
#   bash tools/setup_env.sh [VENV_DIR]
# If the system python3 already imports torch and detectron2 (e.g. an official CUDA build of
# detectron2), the venv sees them through --system-site-packages and nothing is reinstalled.
set -euo pipefail
VENV="${1:-.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  if python3 -c "import torch, torchvision, detectron2" >/dev/null 2>&1; then
    echo "[setup] system python3 has torch + detectron2: creating $VENV with --system-site-packages"
    python3 -m venv --system-site-packages "$VENV"
  else
    echo "[setup] creating $VENV"
    python3 -m venv "$VENV"
  fi
fi
pip_q() { "$PY" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
if ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "[setup] installing torch 2.14.1 / torchvision 0.29.1 (a few minutes, ~5.5 GB)"
  pip_q install torch==2.14.1 torchvision==0.29.1
fi
"$PY" tools/install_detectron2.py .cache/detectron2 2>&1 | grep -v -E "FutureWarning|warnings.warn|^WARNING: Location"
echo "[setup] installing vis_d2 (editable) and test tools"
pip_q install --no-build-isolation -e ".[dev]"
"$PY" -c "import torch, detectron2, vis_d2; print('[setup] ready: torch', torch.__version__, '| detectron2', detectron2.__version__, '| vis_d2', vis_d2.__version__)"
