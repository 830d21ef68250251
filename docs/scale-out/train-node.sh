#!/bin/sh
# Training over several machines: run this on every node, with the same variables.
#   NNODES=2 NPROC=8 RDZV_ENDPOINT=node0:29500 RDZV_ID=big \
#     sh docs/scale-out/train-node.sh --data data/corpus --run-dir /shared/runs/big
# NNODES machines of NPROC processes each (one per GPU) meet at RDZV_ENDPOINT (host:port
# of any one of them); the rendezvous hands out the ranks, so no node needs its own number.
set -eu
exec torchrun --nnodes "${NNODES:?how many machines}" --nproc_per_node "${NPROC:-1}" \
    --rdzv_backend c10d --rdzv_endpoint "${RDZV_ENDPOINT:?host:port of one node}" \
    --rdzv_id "${RDZV_ID:?a name for this run}" \
    -m apcodec_cli.train.cli "$@"
