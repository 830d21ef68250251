#!/bin/sh
# One prepared slice for a lent GPU (docs/gpu.md), under 9 minutes in all:
#
#   run(command="sh scripts/gpu_slice.sh", carry=["data/pack", ".whl"], timeout_s=600)
#
# 1. Alone on the GPU, so that the times mean something: a short `apcodec bench --cuda`
#    (60 s of audio, no Opus) and a timed folder conversion (scripts/folder_speed.py).
# 2. Three training runs side by side from weights/apcodec-r1-750a8b1b89c5a49f.pt for what is left of
#    TOTAL_MINUTES (A: as the shipped weights were last trained: reconstruction losses,
#    phase losses weighted by amplitude, lr 5e-4; B: A with the GAN from the first step, as
#    published; C: B with the period discriminators only, the cheaper GAN), and beside them
#    the GPU tests (`pytest -m gpu`) and the CUDA checks (gpu_checks.py).
#
# Results under $OUT (at most 8 files come back): A.pt B.pt C.pt (exported weights),
# results.json (the figures, scripts/gpu_summary.py), logs.tar.gz (every log, the pytest
# report, bench's table, nvidia-smi).
#
# Knobs (environment): TOTAL_MINUTES (8.5), FOLDER_MINUTES and FOLDER_FILES (30, 30),
# SLICE_DATA (data/pack), SLICE_PRESET (cpu), SLICE_INIT (weights/apcodec-r1-750a8b1b89c5a49f.pt; empty: train
# from scratch), SLICE_RUNS (work folder, emptied first; /tmp/apcodec-slice). DRY_RUN=1
# rehearses every step on the CPU in seconds: two training steps, a tiny folder, 0.5 s of
# bench (tests/test_gpu_slice.py runs it on the tiny preset).
set -u
OUT=${OUT:-out/gpu-slice}
mkdir -p "$OUT"
START=$(date +%s)
TOTAL=${TOTAL_MINUTES:-8.5}
WRAP=0.4  # minutes kept for saving, exporting and packing the results
DATA=${SLICE_DATA:-data/pack}
PRESET=${SLICE_PRESET:-cpu}
INIT=${SLICE_INIT-weights/apcodec-r1-750a8b1b89c5a49f.pt}
RUNS=${SLICE_RUNS:-/tmp/apcodec-slice}
DEVICE=cuda
FOLDER="--minutes ${FOLDER_MINUTES:-30} --files ${FOLDER_FILES:-30}"
BENCH="--cuda --seconds 60 --threads $(nproc)"
CHECKS=""
LIMIT=""
if [ "${DRY_RUN:-0}" = 1 ]; then
    DEVICE=cpu
    FOLDER="--minutes 0.02 --files 2 --variants 32/fp32 --no-startup"
    BENCH="--no-cuda --seconds 0.5 --threads 1"
    CHECKS="--seconds 0.5"
    LIMIT="--max-steps 2 --threads 1 --resident --set batch_size=2"
    export OMP_NUM_THREADS=1  # tiny models: threads only spin (3x the time on 2 busy cores)
fi
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import soundfile, soxr" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$RUNS"; mkdir -p "$RUNS"
(nvidia-smi || true) > "$RUNS/nvidia-smi.txt" 2>&1

left() {  # minutes left before the wrap-up
    awk -v s="$START" -v n="$(date +%s)" -v t="$TOTAL" -v w="$WRAP" \
        'BEGIN { m = t - w - (n - s) / 60; printf "%.2f", (m > 0.1 ? m : 0.1) }'
}
seconds_left() {  # whole seconds left before the trainings stop, less a margin
    awk -v m="$(left)" 'BEGIN { s = int(m * 60) - 15; print (s > 5 ? s : 5) }'
}

# 1. Alone on the GPU.
echo "== bench ($(left) min left)"
timeout 100 python3 -m apcodec_cli bench $BENCH --no-opus --baseline-seconds 0 -q \
    --json-out "$RUNS/bench.json" > "$RUNS/bench.md" 2> "$RUNS/bench.stderr"
echo "== folder conversion ($(left) min left)"
timeout 170 python3 scripts/folder_speed.py --out "$RUNS/folder.json" --device $DEVICE \
    $FOLDER > "$RUNS/folder.stdout" 2>&1

# 2. Training, with the tests and checks beside it.
MINUTES=$(left)
echo "== training for $MINUTES min"
one() {  # RUN-DIR MINUTES, then --set options
    dir=$1 minutes=$2; shift 2
    # shellcheck disable=SC2086
    python3 -m apcodec_cli train --data "$DATA" --run-dir "$dir" --preset "$PRESET" \
        ${INIT:+--init "$INIT"} --device $DEVICE --max-minutes "$minutes" --quiet \
        --export "$OUT/$(basename "$dir").pt" --force \
        --set val_every=0 --set log_every=200 --set save_every=1000000 "$@" $LIMIT
}
train() {  # NAME, then --set options; a run that fails is retried once in float32
    name=$1; shift
    ( one "$RUNS/$name" "$MINUTES" "$@" > "$RUNS/$name.stderr" 2>&1 ||
      { echo "$name failed; retry in float32" >&2
        one "$RUNS/$name-fp32" "$(left)" "$@" --set bf16=false > "$RUNS/$name-fp32.stderr" 2>&1
        [ -f "$OUT/$name-fp32.pt" ] && mv "$OUT/$name-fp32.pt" "$OUT/$name.pt"; } ) &
}
# The variants of the next lease (docs/training.md says why): A goes on as the shipped weights
# were trained (reconstruction losses, phase losses weighted by amplitude, lr 5e-4); B adds
# the discriminators from the first step (the published recipe); C is B without the
# resolution discriminators (mrd_channels=0: a third of B's discriminator time on a CPU).
train A --set batch_size=32 --set gan_start=100000000 --set lr=5e-4 --set loss.phase_power=1
train B --set batch_size=32 --set gan_start=0 --set lr=5e-4 --set loss.phase_power=1
train C --set batch_size=32 --set gan_start=0 --set lr=5e-4 --set loss.phase_power=1 \
    --set mrd_channels=0
timeout "$(seconds_left)" python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py \
    -o junit_family=xunit1 --junitxml "$RUNS/gpu-tests.xml" > "$RUNS/gpu-tests.txt" 2>&1
timeout "$(seconds_left)" python3 scripts/gpu_checks.py --out "$RUNS/checks" --device $DEVICE \
    $CHECKS > "$RUNS/checks.stdout" 2>&1
wait

# Wrap-up: the figures in one file, the logs in another.
python3 scripts/gpu_summary.py "$RUNS" --started "$START" > "$OUT/results.json"
cat "$OUT/results.json"
tail -n 5 "$RUNS/gpu-tests.txt"
tar -czf "$OUT/logs.tar.gz" -C "$RUNS" --exclude='*.pt' .
ls -la "$OUT"
