#!/bin/sh
# The ship test of a training candidate (docs/training.md, "How a candidate is judged"):
# level-calibrate it, score it on the validation clips in float32, compare it clip by clip
# with a baseline's scores, and run the diagnostic.
#
#   sh scripts/ship_test.sh NAME WEIGHTS BASELINE_JSON [OUT_DIR]
#
# NAME           a short label for the outputs (e.g. K8)
# WEIGHTS        the candidate (a run's exported apcodec.pt, before calibration)
# BASELINE_JSON  `apcodec eval --json-out` of the weights to beat on the same clips
# OUT_DIR        where the outputs go (default runs/ship)
#
# Environment: DATA (default data/corpus), THREADS (default 2), CLIPS (per category,
# default 16), DIAG=0 to skip the diagnostic.
# Writes OUT_DIR/NAMEcal.pt (the calibrated weights; code tables come after, with
# scripts/code_tables.py), eval_NAME.json/.md, cmp_NAME.md and diag_NAME.md; prints the
# comparison.
set -eu
[ $# -ge 3 ] || { sed -n 2,17p "$0" >&2; exit 2; }
name=$1 weights=$2 baseline=$3 out=${4:-runs/ship}
data=${DATA:-data/corpus} threads=${THREADS:-2} clips=${CLIPS:-16}
[ -f "$weights" ] || { echo "ship_test: no weights file $weights" >&2; exit 1; }
[ -f "$baseline" ] || { echo "ship_test: no baseline scores $baseline" >&2; exit 1; }
mkdir -p "$out"
python -m apcodec_cli.train.calibrate --weights "$weights" --data "$data" \
    --out "$out/${name}cal.pt" --clips 96 --threads "$threads" -q -f
APCODEC_PRECISION=fp32 apcodec eval -w "$out/${name}cal.pt" --data "$data" \
    --max-clips "$clips" --seconds 10 --no-opus --threads "$threads" \
    --json-out "$out/eval_$name.json" -q -f > "$out/eval_$name.md"
python -m apcodec_cli.evaluate.compare "$baseline" "$out/eval_$name.json" \
    > "$out/cmp_$name.md"
if [ "${DIAG:-1}" = 1 ]; then
    python -m apcodec_cli.evaluate.diagnose --weights "$out/${name}cal.pt" --data "$data" \
        --max-clips 8 --seconds 10 --threads "$threads" -q > "$out/diag_$name.md"
fi
cat "$out/cmp_$name.md"
