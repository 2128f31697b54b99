#!/usr/bin/env bash
# Snakemake (--sdm conda) runs this once inside each freshly created env, from the working directory.
# Rules call the installed `ternarylm` command, so the package goes into the env: editable, from the
# clone being run, so code edits need no env rebuild. (report.post-deploy.sh is a link to this file.)
set -euo pipefail
if grep -qs '^name = "ternarylm"' pyproject.toml; then
    python -m pip install --no-deps -e .
else
    echo "ternarylm: run from a clone, or install the package into this env yourself:" \
        "conda activate <env> && pip install --no-deps <path to a ternarylm clone>" >&2
    exit 1
fi
