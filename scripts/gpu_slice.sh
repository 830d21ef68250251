#!/bin/sh
# One prepared slice for a lent GPU (see docs/gpu.md): train three variants of the shipped
# model side by side on the GPU from weights/apcodec.pt, and meanwhile run the CUDA checks.
#
#   run(command="sh scripts/gpu_slice.sh", carry=["data/pack", ".whl"], timeout_s=600)
#
# Results under $OUT: A.pt B.pt C.pt (exported weights), logs.tar.gz (training logs,
# config, stderr), checks.json. SLICE_MINUTES (default 7.5) bounds each training run.
# With DRY_RUN=1 it runs the same commands on the CPU for a few steps (a rehearsal).
set -u
OUT=${OUT:-out/gpu-slice}
mkdir -p "$OUT"
MINUTES=${SLICE_MINUTES:-7.5}
DEVICE=cuda
LIMIT=""
if [ "${DRY_RUN:-0}" = 1 ]; then
    DEVICE=cpu; MINUTES=2; LIMIT="--max-steps 3 --threads 1 --resident --set batch_size=2"
fi
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import soundfile, soxr" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
RUNS=/tmp/apcodec-slice
rm -rf "$RUNS"; mkdir -p "$RUNS"

START=$(date +%s)
left() {  # minutes left of the slice's training time
    awk -v s="$START" -v n="$(date +%s)" -v m="$MINUTES" 'BEGIN { printf "%.2f", m - (n - s) / 60 }'
}
one() {  # RUN-DIR MINUTES, then --set options
    dir=$1 minutes=$2; shift 2
    # shellcheck disable=SC2086
    python3 -m apcodec_cli train --data data/pack --run-dir "$dir" --preset cpu \
        --init weights/apcodec.pt --device $DEVICE --max-minutes "$minutes" --quiet \
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
# A: reconstruction losses only (as the shipped weights were trained); B: GAN from the
# first step (the published recipe); C: A at 2.5x the learning rate.
train A --set batch_size=32 --set gan_start=100000000
train B --set batch_size=32 --set gan_start=0
train C --set batch_size=32 --set gan_start=100000000 --set lr=5e-4
python3 scripts/gpu_checks.py --out "$RUNS/checks" --device $DEVICE \
    --minutes "$( [ "${DRY_RUN:-0}" = 1 ] && echo 0.2 || echo 10 )" \
    > "$RUNS/checks.stdout" 2>&1
cp "$RUNS/checks/checks.json" "$OUT/" 2>/dev/null
wait
for name in A B C; do
    echo "== $name"; tail -n 3 "$RUNS/$name.stderr"; tail -n 3 "$RUNS/$name-fp32.stderr" 2>/dev/null
    tail -n 2 "$RUNS/$name/log.jsonl" "$RUNS/$name-fp32/log.jsonl" 2>/dev/null | cut -c1-400
done
cat "$RUNS/checks.stdout"
tar -czf "$OUT/logs.tar.gz" -C "$RUNS" --exclude=state.pt --exclude='*.pt' .
ls -la "$OUT"
