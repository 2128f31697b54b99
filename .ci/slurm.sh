#!/usr/bin/env bash
# CI: run the SLURM tests (pytest -m slurm: the smoke DAG through the SLURM executor, and a cancelled
# pretrain job that is resubmitted and resumes) on a real single-node cluster.
# If no cluster answers `sinfo`, and we are root and ../shared/cluster/local-slurm.sh exists, it starts
# one (slurmctld + slurmd + munge, ~10 s with the packages present, ~30 s without) and stops it again at
# the end (KEEP_SLURM=1 leaves it running). Without a cluster the tests report themselves as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=""
for d in ../shared/cluster; do
    if [ -f "$d/local-slurm.sh" ]; then cluster=$(cd "$d" && pwd); break; fi
done

python -c "import snakemake_executor_plugin_slurm" 2>/dev/null || {
    echo "snakemake-executor-plugin-slurm missing: pip install -e '.[slurm]'" >&2
    exit 1
}

if sinfo -h -p debug >/dev/null 2>&1; then
    echo "using the running SLURM cluster: $(sinfo -h -p debug -o '%P %D %T' | head -1)"
elif [ -n "$cluster" ] && [ "$(id -u)" = 0 ]; then
    bash "$cluster/local-slurm.sh"
    if [ "${KEEP_SLURM:-0}" != 1 ]; then
        trap 'bash "$cluster/local-slurm.sh" stop' EXIT
    fi
else
    echo "no SLURM cluster, and none can be started here (needs root and ../shared/cluster/local-slurm.sh)"
fi

t0=$SECONDS
python -m pytest -m slurm -ra -s -q tests/test_slurm.py "$@"   # extra args go to pytest
echo "SLURM tests: $((SECONDS - t0)) s"
