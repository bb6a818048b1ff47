#!/bin/bash
# One device call: three training runs side by side on one GPU, on a carried subset of the pairs.
# Here, first:  python -m mp3fix.train.pack --train 760 --val 48 --out .gpu/pairs
#               mkdir -p .gpu/tilt && cp runs/tilt/last.pt .gpu/tilt/   (the base-8 run to go on from)
# There (device run, carry .gpu):  bash scripts/gpu-train.sh MINUTES cuda   -> $OUT/{b16,b12,tilt}.tar
# A dry run here: OUT=/tmp/out bash scripts/gpu-train.sh 0.2 cpu
MIN=${1:-7.5}; DEV=${2:-cuda}; OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export PYTHONUNBUFFERED=1
PY=python3
( nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  $PY -c "import torch, onnxruntime as o; print('torch', torch.__version__, torch.cuda.is_available(), 'ort', o.__version__, o.get_available_providers())"
  nproc ) 2>&1 | tee $OUT/env.txt
$PY -m mp3fix.train.pack --unpack .gpu/pairs --out /tmp/pairs || exit 1
mkdir -p /tmp/runs/tilt && cp .gpu/tilt/last.pt /tmp/runs/tilt/
COMMON="--data /tmp/pairs --distill models/unet-state --distill-weight 3 --nsim 16 --crps 10 --warmup 1000000 --tilt-db 6 --batch 32 --minutes $MIN --keep-best --val-every 500 --ckpt-every 500 --steps 10000000 --threads 4 --device $DEV"
$PY -m mp3fix.train.train $COMMON --arch band --bands 64 --base 16 --depth 3 --time-levels 2 --lr 3e-4 --run /tmp/runs/b16 > /tmp/b16.log 2>&1 &
$PY -m mp3fix.train.train $COMMON --arch band --bands 64 --base 12 --depth 3 --time-levels 2 --lr 3e-4 --run /tmp/runs/b12 > /tmp/b12.log 2>&1 &
$PY -m mp3fix.train.train $COMMON --lr 2e-4 --run /tmp/runs/tilt > /tmp/tilt.log 2>&1 &
sleep 60; tail -n 2 /tmp/b16.log /tmp/b12.log /tmp/tilt.log; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
wait
for r in b16 b12 tilt; do
  cp /tmp/$r.log /tmp/runs/$r/stdout.log
  tar -C /tmp/runs -cf $OUT/$r.tar $r/last.pt $r/best.pt $r/log.csv $r/args.json $r/stdout.log
  grep validation /tmp/$r.log | tail -n 4; tail -n 1 /tmp/$r.log
done
ls -la $OUT
