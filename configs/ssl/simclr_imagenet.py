r"""SimCLR, ResNet-50, ImageNet-1k (streamed): the paper's 100-epoch recipe at batch 4096, for a GPU/TPU cluster.

Chen et al. 2020 (arXiv:2002.05709), appendix B.1 and B.9: LARS, learning rate 0.3 x batch / 256 = 4.8,
weight decay 1e-6, 10 warm-up epochs then cosine, temperature 0.1, a 2-layer projector 2048-128, colour
strength 1.0 with blur (`views.SIMCLR` at 224 x 224), global BatchNorm over the batch (the trainer's single
BatchNorm over the global batch), bfloat16 compute with float32 parameters. ImageNet does not fit in host
memory, so it is streamed (`data.streamed=auto`: images read by index from TFDS's ArrayRecord files and
decoded, resized to 256 on the shorter side and centre-cropped on the host; random crops to 224 on device).

  # every host of the job, with ImageNet prepared by `tfds build imagenet2012` in /shared/tensorflow_datasets
  python -m ssl_jax.main --config=configs/ssl/simclr_imagenet.py --workdir=/shared/runs/simclr_in1k \
    --config.data.tfds_data_dir=/shared/tensorflow_datasets
  # or through experiments/launch/slurm.sbatch / tpu_pod.sh (README, "Running on a cluster")

Budget: 31,300 steps of 4096 images (100 epochs), about 1,600 TPU v3 core-hours in the paper's setting.
Result when we ran it: not run here (no accelerator and no ImageNet on the machine that wrote it); the paper
reports a linear probe of 66.5% top-1 for this 100-epoch recipe at batch 4096 (its figure B.1; 64.6-66.5%
across batch sizes). `tests/data/test_streamed.py` traces its stream, init and step on mocked ImageNet.
"""

from ssl_jax.data import views
from ssl_jax.train.config import base_config

TRAIN_IMAGES = 1_281_167


def get_config():
  c = base_config("simclr")
  c.batch_size = 4096
  steps_per_epoch = TRAIN_IMAGES // c.batch_size
  c.total_steps = 100 * steps_per_epoch
  c.checkpoint_every_steps = 1000
  c.eval_every_steps = 5 * steps_per_epoch
  c.log_every_steps = 100

  c.data.name = "imagenet2012"
  c.data.image_size = 256          # shorter side 256, centre 256 x 256 on the host; random crops of 224 on device
  c.data.streamed = "auto"

  c.model.encoder = "resnet50_imagenet"
  c.model.dtype = "bfloat16"

  c.simclr.temperature = 0.1
  c.simclr.proj_hidden_dim = 2048
  c.simclr.proj_dim = 128
  c.simclr.views = views.to_config(views.SIMCLR)   # 224 x 224, colour strength 1.0, blur 0.5 on both views

  c.optim.name = "lars"
  c.optim.lr = 0.3
  c.optim.scale_lr_with_batch = True   # 0.3 x 4096 / 256 = 4.8
  c.optim.warmup_steps = 10 * steps_per_epoch
  c.optim.weight_decay = 1e-6

  c.eval.monitor_examples = 10000
  c.eval.train_examples = 100_000      # the final linear probe / kNN on a seeded 100k-image subset of train
  c.eval.probe_epochs = 30
  c.eval.pixel_baseline = False
  return c
