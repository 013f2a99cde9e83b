#!/usr/bin/env bash
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_DEFAULT_MATMUL_PRECISION=highest
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
BT=configs/ssl/barlow_twins_fashion_mnist.py
VI=configs/ssl/vicreg_fashion_mnist.py
DI=configs/ssl/dino_fashion_mnist.py
W="timeout ${SWEEP_SECONDS:-200} python3 experiments/gpu_sweep/sweep.py $OUT/sweep.jsonl .gpu/fmnist.npz"
$W "$BT|total_steps=9600|checkpoint_every_steps=3200|eval_every_steps=3200" > $OUT/w1.log 2>&1 &
$W "$BT|seed=2" "$VI|seed=1" > $OUT/w2.log 2>&1 &
$W "$DI|total_steps=4800|batch_size=128|dino.warmup_teacher_temperature_steps=1200|dino.freeze_last_layer_steps=480|optim.warmup_steps=400|eval_every_steps=1600|checkpoint_every_steps=1600" > $OUT/w3.log 2>&1 &
wait
