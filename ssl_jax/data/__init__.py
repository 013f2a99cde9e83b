"""ssl_jax.data: datasets through TFDS, deterministic resumable batches, on-device augmentation views.

    from ssl_jax import data
    train = data.load_arrays("fashion_mnist", "train")            # ArrayDataset, uint8 images
    batches = data.iterate_batches(train, global_batch_size=512, seed=0, start_step=step)
    batch = data.shard_batch(next(batches), mesh)                  # global jax.Arrays
    v1, v2 = data.simclr_views(key, batch["image"], preset)         # inside jit, on device

The trainer reads through `ssl_jax.data.streams`: the stream a method declares (unlabelled images,
labelled + unlabelled, padded bags, P x K classes, source + target) gives each process its rows of every
global batch as a pure function of (seed, step). Datasets too large for host memory are read by index from
disk instead (`load_streamed`, with the same interface), so the same streams serve both.

Importing this package imports neither TensorFlow nor TFDS; they are loaded on the first call that
reads data. The TFDS builders of `ssl_jax.data.idx` (`IdxImages`, `SklearnDigits`) are loaded on
first access.
"""

from ssl_jax.data.augment import (MEAN_STD, color_jitter, cutout, gaussian_blur, mean_std,
                                  normalize, rand_augment, random_crop_pad, random_flip,
                                  random_grayscale, random_resized_crop, resize, solarize,
                                  to_float)
from ssl_jax.data.datasets import (DATASETS, DEBIAN_FASHION_MNIST_DIR, ArrayDataset,
                                   DatasetInfo, class_balanced_indices, dataset_info, get_builder,
                                   labeled_subset, load_arrays)
from ssl_jax.data.streamed import (STREAMED, LazyImages, StreamedDataset, is_streamed, load_streamed,
                                   use_streaming)
from ssl_jax.data.tf_setup import DatasetNotFoundError
from ssl_jax.data.pipeline import (ArrayBatcher, BatchIterator, batch_indices, iterate_batches, shard_batch,
                                   steps_per_epoch, tf_iterate_batches)
from ssl_jax.data.views import (BYOL, DINO, FIXMATCH, PRESETS, SIMCLR, SIMCLR_CIFAR, SWAV,
                                MultiCropViews, SimCLRViews, WeakStrongViews, eval_view,
                                for_dataset, make_views, multi_crop_views, num_views, simclr_views,
                                from_config, to_config, weak_strong_views, weak_view)

_LAZY_IDX = ("IdxImages", "SklearnDigits", "SklearnDigits28", "SklearnDigitsMnistLayout", "Mnist5k", "prepare_idx", "prepare_digits",
             "prepare_small", "read_idx",
             "FASHION_MNIST_CLASSES")


def __getattr__(name: str):
  if name in _LAZY_IDX:
    from ssl_jax.data import idx  # pylint: disable=g-import-not-at-top
    return getattr(idx, name)
  raise AttributeError(f"module 'ssl_jax.data' has no attribute {name!r}")
