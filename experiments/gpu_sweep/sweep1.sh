#!/usr/bin/env bash
# One device call: 4 sweep workers share the GPU; each appends JSON lines to $OUT/sweep.jsonl.
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_DEFAULT_MATMUL_PRECISION=highest
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv > $OUT/env.txt
BT=configs/ssl/barlow_twins_fashion_mnist.py
VI=configs/ssl/vicreg_fashion_mnist.py
DI=configs/ssl/dino_fashion_mnist.py
D24="$DI|total_steps=2400|batch_size=128|dino.warmup_teacher_temperature_steps=600|dino.freeze_last_layer_steps=240|optim.warmup_steps=400|eval_every_steps=800"
W="timeout ${SWEEP_SECONDS:-520} python3 experiments/gpu_sweep/sweep.py $OUT/sweep.jsonl .gpu/fmnist.npz"
$W "$BT" "$BT|seed=1" "$BT|optim.lr=0.003" "$BT|optim.lr=0.001" "$BT|optim.weight_decay=0.001" "$BT|barlow_twins.lambda_=0.01" "$BT|barlow_twins.lambda_=0.0025" "$BT|seed=2" > $OUT/w1.log 2>&1 &
$W "$VI" "$BT|barlow_twins.views.brightness=0.8|barlow_twins.views.contrast=0.8" "$BT|barlow_twins.views.crop_scale=(0.4, 1.0)" "$VI|optim.lr=0.003" "$BT|model.widths=(32, 64, 128, 512)" "$BT|optim.warmup_steps=200" "$VI|seed=1" "$BT|barlow_twins.views.solarize_p=(0.0, 0.0)" > $OUT/w2.log 2>&1 &
$W "$DI" "$D24" "$DI|dino.num_prototypes=100" "$DI|optim.weight_decay=0.04" "$DI|dino.student_temperature=0.2" "$DI|dino.num_prototypes=100|optim.lr=0.001" "$DI|dino.center_momentum=0.99" > $OUT/w3.log 2>&1 &
$W "$DI|dino.views.num_local=4" "$DI|dino.views.num_local=6" "$DI|dino.views.global_scale=(0.4, 1.0)" "$DI|dino.hidden_dim=1024|dino.bottleneck_dim=256" "$DI|optim.lr=0.004" "$DI|dino.tau_base=0.996" "$DI|seed=1" > $OUT/w4.log 2>&1 &
wait
tail -3 $OUT/w*.log
