#!/bin/sh
# The ship test of a training candidate (docs/training.md, "How a candidate is judged"):
# level-calibrate it, score it in float32 on the in-source validation clips and on the
# held-out (out-of-source) clips, compare each clip by clip with a baseline's scores, and
# run the diagnostic. A candidate ships only when it is better out of source.
#
#   sh scripts/ship_test.sh NAME WEIGHTS BASELINE_JSON [OUT_DIR]
#
# NAME           a short label for the outputs (e.g. K8)
# WEIGHTS        the candidate (a run's exported apcodec.pt, before calibration)
# BASELINE_JSON  `apcodec eval --json-out` of the weights to beat on the same clips; its
#                out-of-source twin is BASELINE_JSON with .json replaced by _heldout.json
# OUT_DIR        where the outputs go (default runs/ship)
#
# Environment: DATA (default data/corpus), HELDOUT (default data/heldout; none: skip),
# THREADS (default 2), CLIPS (per category, default 16), DIAG=0 to skip the diagnostic.
# Writes OUT_DIR/NAMEcal.pt (the calibrated weights; code tables come after, with
# scripts/code_tables.py), eval_NAME.json/.md, eval_NAME_heldout.json/.md, cmp_NAME.md,
# cmp_NAME_heldout.md and diag_NAME.md; prints both comparisons.
set -eu
[ $# -ge 3 ] || { sed -n 2,20p "$0" >&2; exit 2; }
name=$1 weights=$2 baseline=$3 out=${4:-runs/ship}
data=${DATA:-data/corpus} heldout=${HELDOUT:-data/heldout} threads=${THREADS:-2}
clips=${CLIPS:-16}
[ -f "$weights" ] || { echo "ship_test: no weights file $weights" >&2; exit 1; }
[ -f "$baseline" ] || { echo "ship_test: no baseline scores $baseline" >&2; exit 1; }
if [ -d "$heldout" ] && [ ! -f "${baseline%.json}_heldout.json" ]; then
    echo "ship_test: no out-of-source baseline ${baseline%.json}_heldout.json" >&2; exit 1
fi
mkdir -p "$out"
python -m apcodec_cli.train.calibrate --weights "$weights" --data "$data" \
    --out "$out/${name}cal.pt" --clips 96 --threads "$threads" -q -f
score() {  # score DATA_DIR SUFFIX BASELINE
    APCODEC_PRECISION=fp32 apcodec eval -w "$out/${name}cal.pt" --data "$1" \
        --max-clips "$clips" --seconds 10 --no-opus --threads "$threads" \
        --json-out "$out/eval_$name$2.json" -q -f > "$out/eval_$name$2.md"
    python -m apcodec_cli.evaluate.compare "$3" "$out/eval_$name$2.json" \
        > "$out/cmp_$name$2.md"
}
score "$data" "" "$baseline"
if [ -d "$heldout" ]; then
    score "$heldout" _heldout "${baseline%.json}_heldout.json"
fi
if [ "${DIAG:-1}" = 1 ]; then
    python -m apcodec_cli.evaluate.diagnose --weights "$out/${name}cal.pt" --data "$data" \
        --max-clips 8 --seconds 10 --threads "$threads" -q > "$out/diag_$name.md"
fi
echo "## in source ($data)"
cat "$out/cmp_$name.md"
if [ -d "$heldout" ]; then
    echo "## out of source ($heldout)"
    cat "$out/cmp_${name}_heldout.md"
fi
