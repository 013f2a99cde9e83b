"""Training streams: the data a method's step eats, each a pure function of (seed, step), per process.

A method declares the stream it needs with one of the specs below (frozen dataclasses of plain numbers,
built from its config section); the trainer builds it on the loaded dataset and asks it for the rows of
this process at every step:

| spec | batch (this process's rows of the global batch) | families |
| --- | --- | --- |
| `Images(with_indices, subset)` | {"image": uint8 [B, H, W, C], "label": int32 [B]} (labels reach only an online probe), and "index": int32 [B] (the rows' positions in the training images, for a memory bank) with `with_indices`; with `subset` only the images of a labelled split and its unlabelled pool (`data.subset`) | self-supervised |
| `LabelledUnlabelled(num_labels, split_seed, mu)` | {"labelled": {"image", "label"} [B], "unlabelled": {"image"} [mu B]} ("index" too with `with_indices`) | semi-supervised |
| `Bags(target_class, mean_size, std_size, ...)` | {"instances": uint8 [B, n, H, W, C], "mask": bool [B, n], "label": int32 [B], "instance_label": int32 [B, n]} | multiple-instance learning |
| `FolderBags(root, test_root, image_size, ...)` | {"instances", "mask", "label"}: patients' image folders (reads its own data) | multiple-instance learning |
| `ClassBalanced(classes_per_batch, classes)` | {"image", "label"} [P K]: P classes, K examples each | metric learning |
| `SourceTarget(target, ...)` | {"source": {"image", "label"} [B], "target": {"image"} [B]} | domain adaptation |

Every stream returns, for a step s, exactly the rows an uninterrupted run saw at step s, whatever the
number of processes (each process gets its equal slice of every group of the global batch), so a
resumed run repeats an uninterrupted one. Streams only index the dataset's images with the rows they need
(`images[rows]`), never convert the whole array, so the same streams read a `StreamedDataset` (ImageNet,
large folders) batch by batch from disk with the same guarantees. Each built stream also carries the evaluation data its
family is judged on (`Stream.eval_data`) and what must be saved with the run (`Stream.record`, e.g. the
indices of the labelled split).

    spec = streams.LabelledUnlabelled(num_labels=250, split_seed=0, mu=7)
    stream = spec.build(streams.Data(train, test), batch_size=64, seed=0)
    batch = stream.local_batch(step)          # this process's rows; `shard_batch` makes them global
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
import re
from typing import Any

import jax
import numpy as np

from ssl_jax.data.datasets import ArrayDataset, DatasetInfo, class_balanced_indices
from ssl_jax.data.pipeline import _process_slice, array_batch, batch_indices
from ssl_jax.data.streamed import LazyImages, StreamedDataset


@dataclasses.dataclass(frozen=True, eq=False)
class Data:
  """The loaded dataset a stream is built on: its train and test splits (uint8 images, int32 labels), held in
  memory (`ArrayDataset`) or read by index from disk (`StreamedDataset`); the streams only index them."""
  train: ArrayDataset | StreamedDataset
  test: ArrayDataset | StreamedDataset
  name: str = ""
  data_dir: str | None = None
  tfds_data_dir: str | None = None

  def __post_init__(self):
    if not self.name:
      object.__setattr__(self, "name", self.train.name)

  @property
  def info(self) -> DatasetInfo:
    """The loaded train split's metadata, for the specs' `check`."""
    return DatasetInfo(self.train.image_shape, self.train.num_classes, "train", "test",
                       rgb=self.train.image_shape[-1] == 3, train_examples=len(self.train))


def sequence_indices(num_examples: int, start: int, count: int, seed: tuple[int, ...]) -> np.ndarray:
  """Positions [start, start + count) of the endless sequence perm_0, perm_1, ... of `num_examples`.

  perm_e is `np.random.default_rng([*seed, e]).permutation(num_examples)`. Unlike `batch_indices`, the
  batch may be larger than the dataset (40 labels, batch 64): batches simply run across epochs.
  """
  out = np.empty(count, np.int64)
  filled = 0
  pos = start
  while filled < count:
    epoch, offset = divmod(pos, num_examples)
    perm = np.random.default_rng([*seed, epoch]).permutation(num_examples)
    take = min(count - filled, num_examples - offset)
    out[filled:filled + take] = perm[offset:offset + take]
    filled += take
    pos += take
  return out


class Stream(abc.ABC):
  """A built stream: `local_batch(step)` gives this process's rows of global batch `step`.

  Attributes:
    groups: global rows of each group of the batch, e.g. {"labelled": 64, "unlabelled": 448}; every
      group is split evenly over processes and devices.
    eval_data: what the evaluation suites read, e.g. {"train": ArrayDataset, "test": ArrayDataset}.
    name: how the data of a run are named in its results (e.g. "fashion_mnist.0@250").
  """
  groups: dict[str, int]
  eval_data: dict[str, Any]
  name: str

  def global_batch(self, step: int) -> dict[str, Any]:
    """Every row of global batch `step` (what one process of one would read)."""
    return self.local_batch(step, process_index=0, process_count=1)

  @abc.abstractmethod
  def local_batch(self, step: int, *, process_index: int | None = None,
                  process_count: int | None = None) -> dict[str, Any]:
    """This process's rows of global batch `step` (process index and count default to JAX's)."""

  def record(self) -> dict[str, Any]:
    """What is saved with the run (`<workdir>/stream.json`) so it can be checked and reproduced."""
    return {"name": self.name, "groups": dict(self.groups)}

  def describe(self) -> str:
    return self.name


def _fits(rows: int, info, what: str, multiple: int = 1) -> None:
  """A batch (of `multiple` x batch_size rows) drawn without repeats within an epoch must fit in the data."""
  if info.train_examples and rows > info.train_examples:
    raise ValueError(f"A batch of {rows} {what} is larger than the {info.train_examples} training images of "
                     f"the dataset; use --config.batch_size={info.train_examples // multiple} or less.")


def _slice(rows: np.ndarray, process_index, process_count) -> np.ndarray:
  first, local = _process_slice(len(rows), process_index, process_count)
  return rows[first:first + local]


# ------------------------------------------------------------------------------------------ images


@dataclasses.dataclass(frozen=True)
class Subset:
  """The images of the labelled split `<dataset>.<split_seed>@<num_labels>` and of `num_unlabelled` other training
  images drawn once with the same seed: exactly the images of `LabelledUnlabelled(num_labels, split_seed,
  num_unlabelled=num_unlabelled)`, for a label-free run on the same data (`data.subset`, written
  `<split_seed>@<num_labels>+<num_unlabelled>`; the seed tutorial's 5,000 + 20,000 is `S@5000+20000`)."""
  split_seed: int
  num_labels: int
  num_unlabelled: int

  @classmethod
  def parse(cls, text: str) -> "Subset":
    """`S@L+U` (e.g. `0@5000+20000`) -> Subset(S, L, U); ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*@\s*(\d+)\s*\+\s*(\d+)\s*", text)
    if not match:
      raise ValueError(f"data.subset is written SEED@LABELS+UNLABELLED, e.g. 0@5000+20000 (the split "
                       f"<dataset>.0@5000 and 20,000 other training images); got {text!r}.")
    return cls(*(int(g) for g in match.groups()))

  def __str__(self) -> str:
    return f"{self.split_seed}@{self.num_labels}+{self.num_unlabelled}"

  def check(self, info) -> int:
    """The number of images, after the checks of the labelled + unlabelled stream that draws the same images."""
    if self.num_labels <= 0 or self.num_unlabelled <= 0:
      raise ValueError(f"data.subset needs labels > 0 and unlabelled > 0 (SEED@LABELS+UNLABELLED); got {self}.")
    try:
      LabelledUnlabelled(num_labels=self.num_labels, split_seed=self.split_seed, mu=0,
                         num_unlabelled=self.num_unlabelled).check(batch_size=1, info=info)
    except ValueError as e:
      raise ValueError(f"data.subset={self}: {e}") from None
    return self.num_labels + self.num_unlabelled

  def indices(self, train) -> np.ndarray:
    """Sorted positions of the subset's images in `train`."""
    labelled, unlabelled = split_indices(train, num_labels=self.num_labels, split_seed=self.split_seed,
                                         num_unlabelled=self.num_unlabelled)
    return np.union1d(labelled, unlabelled)


@dataclasses.dataclass(frozen=True)
class Images:
  """Unlabelled images: global batch `step` is `batch_indices(N, B, step=step, seed=seed)`.

  The labels ride along for the online probe only (a linear head on stop-gradient features).

  Attributes:
    with_indices: also give each row's position among the training images it draws from, "index" int32 [B]
      (PIRL's memory bank is indexed by it); the images and labels are the same either way.
    subset: draw only from these training images (`Subset`, from `data.subset`); None: every one. The evaluation
      suites still read the whole training split: their labels judge the features, they do not train them.
  """
  with_indices: bool = False
  subset: Subset | None = None

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    if self.subset is not None:
      n = self.subset.check(info)
      if batch_size > n:
        raise ValueError(f"A batch of {batch_size} images is larger than the {n} images of data.subset={self.subset}; "
                         f"use --config.batch_size={n} or less.")
    _fits(batch_size, info, "images")
    return {"image": batch_size}

  def build(self, data: Data, *, batch_size: int, seed: int) -> ImageStream:
    self.check(batch_size=batch_size, info=data.info)
    return ImageStream(data, batch_size, seed, with_indices=self.with_indices, subset=self.subset)


class ImageStream(Stream):

  def __init__(self, data: Data, batch_size: int, seed: int, *, with_indices: bool = False,
               subset: Subset | None = None):
    self._b, self._seed, self._with_indices, self._subset = batch_size, seed, with_indices, subset
    self._full = data.train
    self._train = data.train.take(subset.indices(data.train)) if subset is not None else data.train
    self.groups = {"image": batch_size}
    self.eval_data = {"train": data.train, "test": data.test}
    self.name = data.name if subset is None else f"{data.name}.{subset}u"

  def local_batch(self, step, *, process_index=None, process_count=None):
    return array_batch(self._train, global_batch_size=self._b, step=step, seed=self._seed,
                       process_index=process_index, process_count=process_count, include_index=self._with_indices)

  def record(self):
    return {**super().record(), **({"subset": str(self._subset), "num_images": len(self._train)}
                                   if self._subset is not None else {})}

  def describe(self):
    if self._subset is None:
      return f"{self.name}: {len(self._train)} training images {self._train.image_shape}"
    return (f"{self.name}: {len(self._train)} of the {len(self._full)} training images {self._train.image_shape} "
            "(labels unused)")


# -------------------------------------------------------------------------- labelled + unlabelled


def split_indices(train, *, num_labels: int, split_seed: int,
                  num_unlabelled: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Sorted positions in `train` of the labelled split and of the unlabelled pool.

  The labelled split is `class_balanced_indices(..., num_labels, seed=split_seed)` (every image when
  `num_labels` is 0); the pool is `num_unlabelled` other images drawn once with `split_seed`, or every image
  (the labelled ones included, as FixMatch draws them) when `num_unlabelled` is 0.
  """
  if num_labels:
    labelled = class_balanced_indices(train.labels, train.num_classes, num_labels=num_labels, seed=split_seed)
  else:
    labelled = np.arange(len(train))
  if not num_unlabelled:
    return labelled, np.arange(len(train))
  others = np.setdiff1d(np.arange(len(train)), labelled)
  rng = np.random.default_rng([split_seed, 2])
  return labelled, np.sort(rng.choice(others, num_unlabelled, replace=False))


@dataclasses.dataclass(frozen=True)
class LabelledUnlabelled:
  """A labelled batch of B and an unlabelled batch of mu B, as FixMatch and USB draw them.

  The labelled part is a class-balanced split of the training set: `num_labels` examples drawn with
  `split_seed` (`class_balanced_indices`), named `<dataset>.<split_seed>@<num_labels>` like FixMatch's
  splits; `num_labels=0` labels the whole training set. The unlabelled batch is drawn from every training
  image, the labelled ones included (as FixMatch does), without its labels. Each part is an endless
  sequence of per-epoch permutations of its own, so a labelled set smaller than B works.

  With `num_unlabelled` > 0 the unlabelled images are instead that many training images outside the
  labelled split, drawn once with `split_seed` (the seed tutorial's "5,000 labelled + 20,000 unlabelled").

  Attributes:
    num_labels: size of the labelled split (a multiple of the number of classes), 0 for all.
    split_seed: seed of the split's draw.
    mu: unlabelled batch size as a multiple of B; 0 gives labelled batches only.
    num_unlabelled: size of the unlabelled pool outside the labelled split; 0 uses every training image.
    with_indices: also give each unlabelled image's index in the training set ("index", int32 [mu B]), for
      methods that keep per-example state (FlexMatch's learning status).
  """
  num_labels: int = 250
  split_seed: int = 0
  mu: int = 7
  num_unlabelled: int = 0
  with_indices: bool = False

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    if self.mu < 0 or self.num_labels < 0 or self.num_unlabelled < 0:
      raise ValueError(f"The labelled/unlabelled stream needs labels >= 0, mu >= 0 and unlabelled >= 0, got "
                       f"{self.num_labels}, {self.mu} and {self.num_unlabelled}.")
    if self.num_unlabelled and (not self.num_labels or (
        info.train_examples and self.num_labels + self.num_unlabelled > info.train_examples)):
      raise ValueError(f"{self.num_labels} labelled + {self.num_unlabelled} unlabelled images do not fit in the "
                       f"{info.train_examples or 'available'} training images (the unlabelled pool lies outside "
                       "a labelled split, so labels must be > 0); use fewer unlabelled images, or 0 for all.")
    if self.num_labels and (self.num_labels % info.num_classes or
                            (info.train_examples and self.num_labels > info.train_examples)):
      raise ValueError(f"{self.num_labels} labels cannot be split evenly over the {info.num_classes} classes"
                       f"{f' of {info.train_examples} training images' if info.train_examples else ''}; use a "
                       f"multiple of {info.num_classes} (0 for every label).")
    if self.mu:
      _fits(self.mu * batch_size, info, "unlabelled images (mu x batch_size)", multiple=self.mu)
    return {"labelled": batch_size, **({"unlabelled": self.mu * batch_size} if self.mu else {})}

  def build(self, data: Data, *, batch_size: int, seed: int) -> LabelledUnlabelledStream:
    self.check(batch_size=batch_size, info=data.info)
    return LabelledUnlabelledStream(self, data, batch_size, seed)


class LabelledUnlabelledStream(Stream):

  def __init__(self, spec: LabelledUnlabelled, data: Data, batch_size: int, seed: int):
    train = data.train
    self.labelled_indices, self.unlabelled_indices = split_indices(
        train, num_labels=spec.num_labels, split_seed=spec.split_seed, num_unlabelled=spec.num_unlabelled)
    if spec.num_labels:
      self.name = f"{data.name}.{spec.split_seed}@{spec.num_labels}"
    else:
      self.name = f"{data.name} (all {len(train)} labels)"
    self._spec, self._train, self._b, self._seed = spec, train, batch_size, seed
    self.groups = {"labelled": batch_size}
    if spec.mu:
      self.groups["unlabelled"] = spec.mu * batch_size
    if spec.num_unlabelled:
      self.name += f"+{spec.num_unlabelled}u"
    labelled = train.take(self.labelled_indices)
    self.eval_data = {"train": labelled, "test": data.test,
                      "unlabelled_train": train.take(self.unlabelled_indices) if spec.num_unlabelled else train}

  def local_batch(self, step, *, process_index=None, process_count=None):
    b, n_l = self._b, len(self.labelled_indices)
    rows = self.labelled_indices[sequence_indices(n_l, step * b, b, (self._seed, 0))]
    rows = _slice(rows, process_index, process_count)
    batch = {"labelled": {"image": self._train.images[rows], "label": self._train.labels[rows]}}
    if self._spec.mu:
      u = self._spec.mu * b
      pool = self.unlabelled_indices
      urows = _slice(pool[sequence_indices(len(pool), step * u, u, (self._seed, 1))], process_index,
                     process_count)
      batch["unlabelled"] = {"image": self._train.images[urows]}
      if self._spec.with_indices:
        batch["unlabelled"]["index"] = urows.astype(np.int32)
    return batch

  def record(self):
    return {**super().record(), "num_labels": len(self.labelled_indices),
            "split_seed": self._spec.split_seed, "labelled_indices": self.labelled_indices.tolist(),
            **({"num_unlabelled": len(self.unlabelled_indices)} if self._spec.num_unlabelled else {})}

  def describe(self):
    unl = (f" + {len(self.unlabelled_indices)} unlabelled (batch {self._spec.mu} x {self._b})"
           if self._spec.mu else "")
    return f"{self.name}: {len(self.labelled_indices)} labelled training images{unl}"


# ------------------------------------------------------------------------------------ graph nodes


@dataclasses.dataclass(frozen=True)
class Nodes:
  """Every training image as a node of a graph, in a fixed order: batch `step` is block `step % num_blocks`
  of B consecutive nodes (the last block padded, `valid` False), so one pass over `num_blocks` steps sees every
  node once. A class-balanced split of `num_labels` carries labels (the rest -1), named like
  `LabelledUnlabelled`'s split: `<dataset>.<split_seed>@<num_labels>`. For graph-based methods (label
  propagation), which build per-node state pass by pass.

  Attributes:
    num_labels: size of the labelled split (a multiple of the number of classes).
    split_seed: seed of the split's draw.
  """
  num_labels: int = 250
  split_seed: int = 0

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    if self.num_labels <= 0 or self.num_labels % info.num_classes:
      raise ValueError(f"A graph over the training images needs a labelled split of a positive multiple of the "
                       f"{info.num_classes} classes, got {self.num_labels} labels.")
    if not info.train_examples:
      raise ValueError("A graph over the training images needs their number before loading them; this dataset "
                       "does not say it (use a dataset loaded into memory).")
    return {"node": batch_size}

  def build(self, data: Data, *, batch_size: int, seed: int) -> NodeStream:
    self.check(batch_size=batch_size, info=data.info)
    return NodeStream(self, data, batch_size)


def num_node_blocks(num_nodes: int, batch_size: int) -> int:
  """Steps of one pass over `num_nodes` nodes in blocks of `batch_size`."""
  return -(-num_nodes // batch_size)


class NodeStream(Stream):

  def __init__(self, spec: Nodes, data: Data, batch_size: int):
    train = data.train
    self.labelled_indices = class_balanced_indices(train.labels, train.num_classes, num_labels=spec.num_labels,
                                                   seed=spec.split_seed)
    self.node_labels = np.full(len(train), -1, np.int32)
    self.node_labels[self.labelled_indices] = train.labels[self.labelled_indices]
    self.num_blocks = num_node_blocks(len(train), batch_size)
    self._spec, self._train, self._b = spec, train, batch_size
    self.groups = {"node": batch_size}
    self.name = f"{data.name}.{spec.split_seed}@{spec.num_labels}"
    self.eval_data = {"train": train.take(self.labelled_indices), "test": data.test,
                      "unlabelled_train": train}

  def local_batch(self, step, *, process_index=None, process_count=None):
    b, n = self._b, len(self._train)
    index = (step % self.num_blocks) * b + np.arange(b)
    index = _slice(index, process_index, process_count)
    valid = index < n
    rows = np.where(valid, index, 0)
    images = self._train.images[rows]
    images[~valid] = 0
    return {"index": index.astype(np.int32), "image": images,
            "label": np.where(valid, self.node_labels[rows], -1).astype(np.int32), "valid": valid}

  def record(self):
    return {**super().record(), "num_labels": len(self.labelled_indices), "split_seed": self._spec.split_seed,
            "labelled_indices": self.labelled_indices.tolist(), "num_nodes": len(self._train),
            "num_blocks": self.num_blocks}

  def describe(self):
    return (f"{self.name}: a graph over {len(self._train)} training images, {len(self.labelled_indices)} of them "
            f"labelled, in {self.num_blocks} blocks of {self._b}")


# -------------------------------------------------------------------------------------------- bags


@dataclasses.dataclass(frozen=True)
class Bags:
  """Bags of instances with one label per bag (multiple-instance learning), padded to `max_size`.

  As MNIST-bags of Ilse et al. 2018: a bag's length is drawn from N(mean_size, std_size^2) (rounded,
  clipped to [1, max_size]), its instances uniformly at random from the split, and it is positive when
  it holds at least one instance of `target_class`. `num_train_bags` bags are drawn once from the
  training split and `num_test_bags` from the test split, with `bag_seed`; training batches are
  per-epoch permutations of the training bags. Padded slots hold zero images and mask False.

  With `positive_fraction` f > 0, round(f x bags) of the bags of each split are positive and the rest
  negative, each bag's instances drawn uniformly *given its label* (see `draw_bags`). Uniform bags of a
  class of 10% are almost all positive once they are long (1 - 0.9^50 = 99.5% at 50 instances, all but
  0.003% at 100), which leaves nothing to learn or to score; the mean sizes 50 and 100 of the paper need
  this balance.

  Attributes:
    target_class: the class whose presence makes a bag positive.
    mean_size, std_size: mean and standard deviation of the bag length.
    num_train_bags, num_test_bags: how many bags to draw from each split.
    max_size: padded length; 0 means ceil(mean_size + 5 std_size).
    bag_seed: seed of the draw of the bags (part of the data's name).
    positive_fraction: 0 draws every bag uniformly (the label follows); in (0, 1) that share of the
      bags is positive (part of the data's name).
  """
  target_class: int = 9
  mean_size: float = 10.0
  std_size: float = 2.0
  num_train_bags: int = 500
  num_test_bags: int = 1000
  max_size: int = 0
  bag_seed: int = 0
  positive_fraction: float = 0.0

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    if not 0 <= self.target_class < info.num_classes:
      raise ValueError(f"The bags' target class {self.target_class} is not a class of the dataset "
                       f"(0..{info.num_classes - 1}).")
    if self.num_train_bags < batch_size:
      raise ValueError(f"The batch of {batch_size} bags is larger than the {self.num_train_bags} training bags; "
                       "lower batch_size or draw more bags.")
    if self.mean_size < 1 or self.std_size < 0 or self.num_test_bags < 1:
      raise ValueError(f"Bags need a mean size >= 1, a standard deviation >= 0 and at least one test bag; got "
                       f"{self.mean_size}, {self.std_size} and {self.num_test_bags}.")
    if not 0.0 <= self.positive_fraction < 1.0:
      raise ValueError(f"The share of positive bags must lie in [0, 1) (0: drawn uniformly), got "
                       f"{self.positive_fraction}.")
    return {"bags": batch_size}

  @property
  def padded_size(self) -> int:
    return self.max_size or int(math.ceil(self.mean_size + 5 * self.std_size))

  def build(self, data: Data, *, batch_size: int, seed: int) -> BagStream:
    self.check(batch_size=batch_size, info=data.info)
    return BagStream(self, data, batch_size, seed)


def _positive_count(n: int, p: float, rng: np.random.Generator) -> int:
  """k ~ Binomial(n, p) given k >= 1: how many target instances a positive bag of n uniform draws holds."""
  k = np.arange(1, n + 1)
  log_pmf = (np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in k])
             + k * math.log(p) + (n - k) * math.log1p(-p))  # 0 < p < 1: both classes are present
  pmf = np.exp(log_pmf - log_pmf.max())
  return int(rng.choice(k, p=pmf / pmf.sum()))


def draw_bags(labels: np.ndarray, *, num_bags: int, target_class: int, mean_size: float,
              std_size: float, max_size: int, seed: tuple[int, ...],
              positive_fraction: float = 0.0) -> dict[str, np.ndarray]:
  """Indices of `num_bags` random bags over examples with `labels`, padded with -1 to `max_size`.

  With `positive_fraction` 0 each bag's instances are uniform draws (with replacement) and its label
  follows. With f in (0, 1) round(f x num_bags) bags, at random positions, are positive and the others
  negative, and each bag is a uniform bag *given that label*: a negative one draws uniformly from the
  examples of the other classes; a positive one of n instances holds k ~ Binomial(n, p) given k >= 1
  instances of the target class (p its share of the examples), drawn uniformly from that class, the rest
  from the other classes, in random order.

  Returns {"index": int64 [bags, max_size] (-1 = padding), "mask": bool [bags, max_size],
  "label": int32 [bags] (1 when a bag holds `target_class`), "instance_label": int32 [bags, max_size]}.
  """
  if num_bags < 1 or mean_size < 1 or std_size < 0 or max_size < 1 or not 0.0 <= positive_fraction < 1.0:
    raise ValueError(f"Bags need num_bags >= 1, mean_size >= 1, std_size >= 0, max_size >= 1 and a positive "
                     f"fraction in [0, 1); got {num_bags}, {mean_size}, {std_size}, {max_size} and "
                     f"{positive_fraction}.")
  rng = np.random.default_rng(list(seed))
  lengths = np.clip(np.rint(rng.normal(mean_size, std_size, num_bags)), 1, max_size).astype(np.int64)
  index = np.full((num_bags, max_size), -1, np.int64)
  if positive_fraction:
    targets, others = np.flatnonzero(labels == target_class), np.flatnonzero(labels != target_class)
    if not len(targets) or not len(others):
      raise ValueError(f"Balanced bags need examples of the target class {target_class} and of other classes; "
                       f"this split has {len(targets)} and {len(others)}.")
    positive = np.zeros(num_bags, bool)
    positive[rng.permutation(num_bags)[:round(positive_fraction * num_bags)]] = True
    p = len(targets) / len(labels)
    for i, n in enumerate(lengths):
      k = _positive_count(int(n), p, rng) if positive[i] else 0
      bag = np.concatenate([targets[rng.integers(0, len(targets), k)], others[rng.integers(0, len(others), n - k)]])
      index[i, :n] = rng.permutation(bag)
  else:
    for i, n in enumerate(lengths):
      index[i, :n] = rng.integers(0, len(labels), n)
  mask = index >= 0
  instance_label = np.where(mask, (labels[np.maximum(index, 0)] == target_class), 0).astype(np.int32)
  return {"index": index, "mask": mask, "label": instance_label.max(axis=1).astype(np.int32),
          "instance_label": instance_label}


def draw_split_bags(spec: "Bags", labels: np.ndarray, *, split: int) -> dict[str, np.ndarray]:
  """The bags `BagStream` draws for split 0 (train: `spec.num_train_bags`) or 1 (test) over `labels`."""
  return draw_bags(labels, num_bags=spec.num_train_bags if split == 0 else spec.num_test_bags,
                   target_class=spec.target_class, mean_size=spec.mean_size, std_size=spec.std_size,
                   max_size=spec.padded_size, seed=(spec.bag_seed, split), positive_fraction=spec.positive_fraction)


def gather_bags(images, bags: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, Any]:
  """The padded images of bags `rows`: zeros where the mask is False.

  From a streamed dataset's `LazyImages` the instances are a view that reads nothing yet (`np.asarray` reads
  them), so test bags drawn from a large dataset are read batch by batch when they are evaluated.
  """
  index, mask = bags["index"][rows], bags["mask"][rows]
  if isinstance(images, LazyImages):
    instances = images.gather(np.where(mask, index, -1))
  else:
    instances = images[np.maximum(index, 0)]
    instances[~mask] = 0
  return {"instances": instances, "mask": mask, "label": bags["label"][rows],
          "instance_label": bags["instance_label"][rows]}


class BagStream(Stream):

  def __init__(self, spec: Bags, data: Data, batch_size: int, seed: int):
    self.train_bags = draw_split_bags(spec, data.train.labels, split=0)
    self.test_bags = draw_split_bags(spec, data.test.labels, split=1)
    self._spec, self._data, self._b, self._seed = spec, data, batch_size, seed
    self.groups = {"bags": batch_size}
    balance = f", {spec.positive_fraction:.0%} positive" if spec.positive_fraction else ""
    self.name = (f"{data.name}-bags.{spec.bag_seed}@{spec.num_train_bags} (target {spec.target_class}, "
                 f"size {spec.mean_size:g}+-{spec.std_size:g}{balance})")
    self.eval_data = {"bags_test": gather_bags(data.test.images, self.test_bags,
                                               np.arange(spec.num_test_bags))}

  def local_batch(self, step, *, process_index=None, process_count=None):
    rows = batch_indices(self._spec.num_train_bags, global_batch_size=self._b, step=step, seed=self._seed)
    batch = gather_bags(self._data.train.images, self.train_bags, _slice(rows, process_index, process_count))
    return {**batch, "instances": np.asarray(batch["instances"])}  # read here, in the prefetching thread

  def record(self):
    return {**super().record(), "train_positive": int(self.train_bags["label"].sum()),
            "test_positive": int(self.test_bags["label"].sum()), "max_size": self._spec.padded_size}

  def describe(self):
    pos = self.train_bags["label"].mean()
    return (f"{self.name}: {self._spec.num_train_bags} training bags ({pos:.0%} positive), "
            f"{self._spec.num_test_bags} test bags, padded to {self._spec.padded_size} instances")


FOLDER_BAGS = "folder_bags"
"""The `data.name` of bags read from a folder tree (`FolderBags`); `data.data_dir` is its root."""


@dataclasses.dataclass(frozen=True)
class FolderBags:
  """Patient-level bags from folders (`ssl_jax.data.bag_folders`): root/<patient_id>/*.png + labels.csv.

  The spec reads its own data (`reads_own_data`): the trainer takes the image shape from `info` and
  builds the stream with no in-memory dataset. The test patients are those of `test_root` when given,
  else a class-stratified `test_fraction` of root's patients drawn with `split_seed`. Bags are padded to
  `max_size` (0: the largest patient); a training batch is a per-epoch permutation of the training bags.

  Attributes:
    root: the training patients' folder (`data.data_dir`).
    test_root: a second folder of test patients; "" splits root's patients.
    test_fraction: share of root's patients held out (when test_root is "").
    image_size: every image is resized to image_size x image_size (`data.image_size`).
    channels: 1 (grayscale) or 3 (RGB); 0 is 1 when every image is grayscale (`data.channels`).
    split_seed: seed of the held-out split.
    max_size: padded bag length; 0 is the largest patient's image count.
  """
  root: str
  test_root: str = ""
  test_fraction: float = 0.25
  image_size: int = 28
  channels: int = 1
  split_seed: int = 0
  max_size: int = 0
  reads_own_data = True

  @functools.cached_property  # read once: preflight and the stream share this spec
  def num_channels(self) -> int:
    if self.channels:
      return self.channels
    from ssl_jax.data import bag_folders  # pylint: disable=g-import-not-at-top
    return bag_folders.detect_channels(self.root, self.test_root)

  @property
  def info(self) -> DatasetInfo:
    self.check(batch_size=1, info=None)
    c = self.num_channels
    return DatasetInfo((self.image_size, self.image_size, c), 2, "train", "test", rgb=c == 3)

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    del info
    if not self.root:
      raise ValueError("data.name=folder_bags reads the folder data.data_dir, which is empty; pass "
                       "--config.data.data_dir=<root with one folder per patient and labels.csv>.")
    if self.channels not in (0, 1, 3) or self.image_size < 1:
      raise ValueError(f"Folder bags resize every image to S x S: set --config.data.image_size=S (>= 1) and "
                       f"data.channels to 0 (from the images), 1 or 3; got {self.image_size} and {self.channels}.")
    return {"bags": batch_size}

  def build(self, data: Data | None, *, batch_size: int, seed: int) -> FolderBagStream:
    del data  # the spec reads its own folders
    self.check(batch_size=batch_size, info=None)
    return FolderBagStream(self, batch_size, seed)


class FolderBagStream(Stream):

  def __init__(self, spec: FolderBags, batch_size: int, seed: int):
    from ssl_jax.data import bag_folders  # pylint: disable=g-import-not-at-top
    channels = spec.num_channels
    read = lambda root: bag_folders.read_bag_folder(root, image_size=spec.image_size, channels=channels)
    train = read(spec.root)
    if spec.test_root:
      test = read(spec.test_root)
    else:
      tr, te = bag_folders.split_patients(train["label"], test_fraction=spec.test_fraction, seed=spec.split_seed)
      test = {k: ([v[i] for i in te] if isinstance(v, list) else v[te]) for k, v in train.items()}
      train = {k: ([v[i] for i in tr] if isinstance(v, list) else v[tr]) for k, v in train.items()}
    largest = max(len(x) for x in train["images"] + test["images"])
    size = spec.max_size or largest
    if largest > size:
      raise ValueError(f"A patient has {largest} images, more than mil.max_bag_size={size}; raise it or set 0 "
                       "(the largest patient).")
    if len(train["label"]) < batch_size:
      raise ValueError(f"The batch of {batch_size} bags is larger than the {len(train['label'])} training patients; "
                       "lower batch_size.")
    self.train_bags = dict(zip(("instances", "mask"), bag_folders.pad_bags(train["images"], size)),
                           label=train["label"])
    test_bags = dict(zip(("instances", "mask"), bag_folders.pad_bags(test["images"], size)), label=test["label"])
    self._spec, self._b, self._seed, self._size = spec, batch_size, seed, size
    self._patients = (train["patients"], test["patients"])
    self.groups = {"bags": batch_size}
    self.name = f"{FOLDER_BAGS}:{spec.root}"
    self.eval_data = {"bags_test": test_bags}

  def local_batch(self, step, *, process_index=None, process_count=None):
    rows = batch_indices(len(self.train_bags["label"]), global_batch_size=self._b, step=step, seed=self._seed)
    rows = _slice(rows, process_index, process_count)
    return {k: v[rows] for k, v in self.train_bags.items()}

  def record(self):
    return {**super().record(), "train_patients": list(self._patients[0]), "test_patients": list(self._patients[1]),
            "max_size": self._size}

  def describe(self):
    n_tr, n_te = len(self._patients[0]), len(self._patients[1])
    return (f"{self.name}: {n_tr} training patients ({self.train_bags['label'].mean():.0%} positive), {n_te} "
            f"test patients, padded to {self._size} images of {self._spec.image_size}x{self._spec.image_size}")


# --------------------------------------------------------------------------------- P x K batches


@dataclasses.dataclass(frozen=True)
class ClassBalanced:
  """P classes x K examples per batch (metric learning), from the training classes only.

  Global batch `step` draws, with `np.random.default_rng([seed, step])`, P of the `classes` without
  replacement and K = B / P examples of each (without replacement when the class has enough). Classes
  not in `classes` are held out: the retrieval suite scores the test images of those classes, which
  training never sees.

  Attributes:
    classes_per_batch: P.
    classes: the training classes; () means every class (and nothing is held out).
  """
  classes_per_batch: int = 5
  classes: tuple[int, ...] = (0, 1, 2, 3, 4)

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    classes = tuple(self.classes) or tuple(range(info.num_classes))
    bad = [c for c in classes if not 0 <= c < info.num_classes]
    if bad:
      raise ValueError(f"Training classes {bad} are not classes of the dataset (0..{info.num_classes - 1}).")
    p = self.classes_per_batch
    if not 1 <= p <= len(classes) or batch_size % p or batch_size // p < 2:
      raise ValueError(f"A P x K batch of {batch_size} with P={p} classes needs 1 <= P <= {len(classes)} (the "
                       "training classes) and a batch_size divisible by P with K = batch_size / P >= 2.")
    return {"image": batch_size}

  def build(self, data: Data, *, batch_size: int, seed: int) -> ClassBalancedStream:
    self.check(batch_size=batch_size, info=data.info)
    return ClassBalancedStream(self, data, batch_size, seed)


class ClassBalancedStream(Stream):

  def __init__(self, spec: ClassBalanced, data: Data, batch_size: int, seed: int):
    num_classes = data.train.num_classes
    classes = tuple(spec.classes) or tuple(range(num_classes))
    p = spec.classes_per_batch
    self._members = {c: np.flatnonzero(data.train.labels == c) for c in classes}
    empty = [c for c, m in self._members.items() if m.size == 0]
    if empty:
      raise ValueError(f"Training classes {empty} have no examples in {data.name}.")
    self._classes, self._p, self._k = np.asarray(classes), p, batch_size // p
    self._data, self._seed = data, seed
    held_out = sorted(set(range(num_classes)) - set(classes))
    self.held_out = tuple(held_out)
    self.groups = {"image": batch_size}
    self.name = (f"{data.name} classes {list(classes)} (P={p} x K={self._k})"
                 + (f", held out {held_out}" if held_out else ""))
    eval_classes = held_out or list(classes)
    keep = np.isin(data.test.labels, eval_classes)
    self.eval_data = {"retrieval": data.test.take(np.flatnonzero(keep)), "train": data.train,
                      "test": data.test}

  def local_batch(self, step, *, process_index=None, process_count=None):
    rng = np.random.default_rng([self._seed, step])
    chosen = rng.choice(self._classes, self._p, replace=False)
    rows = np.concatenate([
        rng.choice(self._members[c], self._k, replace=self._members[c].size < self._k) for c in chosen])
    rows = _slice(rows, process_index, process_count)
    return {"image": self._data.train.images[rows], "label": self._data.train.labels[rows]}

  def record(self):
    return {**super().record(), "train_classes": self._classes.tolist(), "held_out": list(self.held_out)}


# --------------------------------------------------------------------------------- two domains


@dataclasses.dataclass(frozen=True)
class SourceTarget:
  """Labelled source batches and unlabelled target batches of the same size (domain adaptation).

  The source is the run's dataset (`data.name`); the target is another dataset, loaded like any other
  and resized (bilinear) to the source's image size when they differ. Both are endless per-epoch
  permutations of their own. The target's test split (with its labels) is what the `accuracy` suite
  scores, since adaptation is judged on the target domain.

  Attributes:
    target: dataset name of the target domain (e.g. "digits", "mnist").
    target_data_dir: folder of IDX files for an IDX target ("" for its default).
  """
  target: str = "digits"
  target_data_dir: str = ""

  def check(self, *, batch_size: int, info) -> dict[str, int]:
    _fits(batch_size, info, "source images")
    return {"source": batch_size, "target": batch_size}

  def build(self, data: Data, *, batch_size: int, seed: int) -> SourceTargetStream:
    self.check(batch_size=batch_size, info=data.info)
    from ssl_jax.data.datasets import dataset_info, load_arrays  # pylint: disable=g-import-not-at-top
    info = dataset_info(self.target)
    kwargs = dict(data_dir=self.target_data_dir or None, tfds_data_dir=data.tfds_data_dir)
    target = Data(load_arrays(self.target, info.train_split, **kwargs),
                  load_arrays(self.target, info.test_split, **kwargs), name=self.target)
    return SourceTargetStream(data, target, batch_size, seed)


def match_images(dataset: ArrayDataset, shape: tuple[int, int, int]) -> ArrayDataset:
  """`dataset` with its images resized (bilinear, antialiased) to `shape`'s height and width."""
  if dataset.image_shape == tuple(shape):
    return dataset
  if dataset.image_shape[-1] != shape[-1]:
    raise ValueError(f"The target images have {dataset.image_shape[-1]} channels and the source images "
                     f"{shape[-1]}; use domains with the same number of channels.")
  images = jax.image.resize(dataset.images.astype(np.float32), (len(dataset), *shape), "linear",
                            antialias=True)
  images = np.asarray(np.clip(np.rint(images), 0, 255), np.uint8)
  return dataclasses.replace(dataset, images=images)


class SourceTargetStream(Stream):

  def __init__(self, source: Data, target: Data, batch_size: int, seed: int):
    shape = source.train.image_shape
    self._source = source.train
    self._target = match_images(target.train, shape)
    for what, d in (("source", self._source), ("target", self._target)):
      if len(d) < 1:
        raise ValueError(f"The {what} training split is empty.")
    self._b, self._seed = batch_size, seed
    self.groups = {"source": batch_size, "target": batch_size}
    self.name = f"{source.name} -> {target.name}"
    self.eval_data = {"test": match_images(target.test, shape), "train": self._target,
                      "source_test": source.test}

  def local_batch(self, step, *, process_index=None, process_count=None):
    b = self._b
    s = _slice(sequence_indices(len(self._source), step * b, b, (self._seed, 0)), process_index,
               process_count)
    t = _slice(sequence_indices(len(self._target), step * b, b, (self._seed, 1)), process_index,
               process_count)
    return {"source": {"image": self._source.images[s], "label": self._source.labels[s]},
            "target": {"image": self._target.images[t]}}

  def describe(self):
    return (f"{self.name}: {len(self._source)} labelled source and {len(self._target)} unlabelled target "
            f"images {self._source.image_shape}")


Spec = Images | LabelledUnlabelled | Bags | FolderBags | ClassBalanced | SourceTarget
