#!/bin/sh
# Regenerates docs/rulegraph.dot and docs/rulegraph.png (README, docs/pipeline.md) from the
# workflow itself: the paper preset's DAG (config.yaml) of its targets `all`, `deploy` and `mechanisms`, which between them run every rule. Needs graphviz's
# `dot` (apt-get install graphviz). tests/test_report_docs.py checks that the committed graph names every
# rule of workflow/rules/*.smk and that the PNG is the rendering of the committed .dot.
set -e
cd "$(dirname "$0")/.."
# results_dir: a folder that does not exist, so no existing run's files change the graph
snakemake all deploy mechanisms --rulegraph --config results_dir=/tmp/ternarylm-rulegraph-none 2>/dev/null > docs/rulegraph.dot
dot -Tpng -Gdpi=72 docs/rulegraph.dot -o docs/rulegraph.png
