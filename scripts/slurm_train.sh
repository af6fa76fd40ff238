#!/bin/bash
# Multi-node AffectGPT training under SLURM, without containers (docker/README.md shows pyxis and
# Apptainer). One launcher per node; Accelerate starts one process per GPU.
#
#   OUTPUT_DIR=/lustre/runs/exp1 sbatch --nodes=2 scripts/slurm_train.sh experiment=affectgpt-7b data.root=/lustre/mer2025
#
# Extract the frozen-feature cache first (once, data-parallel over any number of GPUs):
#   srun --nodes=1 --gpus=8 accelerate launch --multi_gpu --num_processes 8 -m affectgpt.apps.features \
#        experiment=affectgpt-7b data.root=/lustre/mer2025
#
# Time limit: training stops with a checkpoint STOP_MARGIN_MINUTES before the job's limit
# (trainer.stop_after_minutes, agreed by all ranks at a step boundary); the job then requeues itself
# and continues from that checkpoint (trainer.resume=auto) until checkpoints/final exists.
# Preemption: SLURM sends SIGUSR1 to this batch shell 5 minutes ahead (--signal=B:USR1@300; also
# `scancel --signal=USR1 --batch JOB`). The launchers would not forward it to their workers (torchrun
# ends them), so the shell writes OUTPUT_DIR/STOP, which rank 0 reads at the next step: every rank
# stops there with a checkpoint, and the job requeues as above.
#SBATCH --job-name=affectgpt
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

: "${OUTPUT_DIR:?set OUTPUT_DIR to a folder every node sees}"
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-conf/accelerate/multi_node.yaml}   # or conf/accelerate/deepspeed_zero3.yaml
STOP_MARGIN_MINUTES=${STOP_MARGIN_MINUTES:-15}
LIMIT_MINUTES=$(squeue -h -j "$SLURM_JOB_ID" -o %L | awk -F'[-:]' '{ if (NF==4) print $1*1440+$2*60+$3; else if (NF==3) print $1*60+$2; else print $1 }')
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk "NR == 1")  # awk reads all: no SIGPIPE under pipefail
MASTER_PORT=${MASTER_PORT:-29500}
export OUTPUT_DIR GPUS_PER_NODE ACCELERATE_CONFIG MASTER_ADDR MASTER_PORT
export STOP_AFTER=$((LIMIT_MINUTES - STOP_MARGIN_MINUTES))
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$HOME/.cache/torch_extensions}  # DeepSpeed's compiled ops, reused

# Single quotes: SLURM_NODEID expands inside each node's task. "$@" are Hydra overrides.
# --kill-on-bad-exit: a node whose ranks fail takes the job down instead of leaving the others waiting.
rm -f "$OUTPUT_DIR/STOP"  # a request of an earlier run was consumed or is stale
trap 'echo "SIGUSR1: asking training to stop with a checkpoint"; mkdir -p "$OUTPUT_DIR"; touch "$OUTPUT_DIR/STOP"' USR1
srun --kill-on-bad-exit=1 bash -c '
  accelerate launch --config_file "$ACCELERATE_CONFIG" \
    --num_machines "$SLURM_NNODES" --machine_rank "$SLURM_NODEID" \
    --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \
    --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" \
    train.py output_dir="$OUTPUT_DIR" trainer.resume=auto trainer.stop_after_minutes="$STOP_AFTER" "$@"' bash "$@" &
step_pid=$!
# In the background, so the trap runs as soon as the signal comes; wait returns >128 then: wait again.
status=0
while true; do
  wait "$step_pid" && status=0 || status=$?
  kill -0 "$step_pid" 2>/dev/null || break
done
if [ "$status" -ne 0 ]; then
  echo "training failed (exit $status); not requeueing" >&2
  exit "$status"
fi

if [ ! -f "$OUTPUT_DIR/checkpoints/final/COMPLETE" ]; then
  echo "stopped before the end; requeueing $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
fi
