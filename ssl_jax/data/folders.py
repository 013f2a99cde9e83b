"""Your own images: a folder of image files is a dataset for every family (`data.name=image_folder`).

Layouts (`data.data_dir=ROOT`), the usual class-per-folder one first:

    ROOT/train/<class>/*.png   ROOT/test/<class>/*.png     labelled, with a test split
    ROOT/<class>/*.png                                     labelled; the test split is a seeded 10% of each class
    ROOT/*.png                                             unlabelled; the test split is a seeded 10%, unlabelled
    ROOT/unlabelled/**.png     (beside any layout above)   extra unlabelled images, as STL-10's split

Class names are the sub-folder names, sorted (label i = the i-th name). Any format PIL reads (PNG, JPEG,
BMP, GIF, WebP, TIFF) in any size and mode: images are converted to grayscale when every image of the
folder is grayscale and to RGB otherwise (or as `data.channels` says), and resized to
`data.image_size` x `data.image_size` (bilinear, as torchvision); `data.image_size=0` keeps the size when
every image has the same one.

The folder is prepared once, like any TFDS dataset, by the `FolderImages` builder into the TFDS data dir
(`data.tfds_data_dir`), under a name made of the folder's path, size and channels; a second run reads the
prepared records (and only lists the folder to check that no file changed: a changed folder is prepared
again). A file that does not decode, an empty class folder, a test class missing from training, or a
folder without images is one sentence naming the file or folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds

from ssl_jax.data.idx import _code_path, _prepare_lock, encode_png
from ssl_jax.data.tf_setup import DatasetNotFoundError, configure_tensorflow

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
UNLABELLED_FOLDER = "unlabelled"
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Layout:
  """What a folder holds: per split, the image files and their labels (-1: unlabelled); the class names."""
  root: str
  files: dict[str, tuple[tuple[str, int], ...]]
  class_names: tuple[str, ...]
  how: str

  def fingerprint(self) -> str:
    """SHA-256 over every file's path, size and modification time (cheap: no file is read)."""
    h = hashlib.sha256()
    for split in sorted(self.files):
      for path, label in self.files[split]:
        st = os.stat(path)
        h.update(f"{split}\0{os.path.relpath(path, self.root)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _images_in(folder: str, *, recursive: bool = False) -> list[str]:
  if recursive:
    found = [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names if _is_image(n)]
  else:
    found = [os.path.join(folder, n) for n in os.listdir(folder)
             if _is_image(n) and os.path.isfile(os.path.join(folder, n))]
  return sorted(found)


def _subfolders(folder: str, skip: tuple[str, ...] = ()) -> list[str]:
  return sorted(n for n in os.listdir(folder)
                if os.path.isdir(os.path.join(folder, n)) and not n.startswith(".") and n not in skip)


def _classes(folder: str, names: list[str]) -> dict[str, list[str]]:
  out = {}
  for name in names:
    images = _images_in(os.path.join(folder, name), recursive=True)
    if not images:
      raise ValueError(f"The class folder {os.path.join(folder, name)} holds no image files "
                       f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder.")
    out[name] = images
  return out


def _holdout(files: list[tuple[str, int]], seed: int) -> tuple[list, list]:
  """A seeded 10% of each label as the test split (at least one image when a label has two or more)."""
  rng = np.random.default_rng(seed)
  labels = np.array([label for _, label in files])
  test = np.zeros(len(files), bool)
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    n = int(round(HOLDOUT_FRACTION * len(members))) or (1 if len(members) > 1 else 0)
    test[rng.choice(members, n, replace=False)] = True
  return [f for f, t in zip(files, test) if not t], [f for f, t in zip(files, test) if t]


def scan(root: str) -> Layout:
  """The layout of `root` (see the module docstring); a mistake in it is one ValueError sentence."""
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    raise DatasetNotFoundError(f"The image folder {root} does not exist; pass --config.data.data_dir=<folder "
                               "of images> (class-per-folder: ROOT/train/<class>/*.png and ROOT/test/<class>/*.png).")
  files: dict[str, list[tuple[str, int]]] = {}
  train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
  if os.path.isdir(train_dir):
    train_classes = _subfolders(train_dir)
    if not train_classes:
      images = _images_in(train_dir)
      if not images:
        raise ValueError(f"{train_dir} holds neither class folders nor image files; put each class's images in "
                         "train/<class>/.")
      class_names, how = (), "unlabelled train/ and test/ folders"
      files["train"] = [(p, -1) for p in images]
      files["test"] = [(p, -1) for p in _images_in(test_dir)] if os.path.isdir(test_dir) else []
    else:
      train = _classes(train_dir, train_classes)
      class_names, how = tuple(train_classes), "train/<class>/ and test/<class>/"
      files["train"] = [(p, i) for i, c in enumerate(class_names) for p in train[c]]
      if os.path.isdir(test_dir):
        test_classes = _subfolders(test_dir)
        unknown = sorted(set(test_classes) - set(class_names))
        if unknown:
          raise ValueError(f"The test folder has classes that training does not: {', '.join(unknown)}; every "
                           f"class in {test_dir} needs a folder of the same name in {train_dir}.")
        test = _classes(test_dir, test_classes)
        files["test"] = [(p, class_names.index(c)) for c in test_classes for p in test[c]]
      else:
        how = "train/<class>/ (test: a seeded 10% of each class)"
        files["train"], files["test"] = _holdout(files["train"], HOLDOUT_SEED)
  else:
    classes = _subfolders(root, skip=(UNLABELLED_FOLDER,))
    if classes:
      found = _classes(root, classes)
      class_names, how = tuple(classes), "<class>/ (test: a seeded 10% of each class)"
      everything = [(p, i) for i, c in enumerate(class_names) for p in found[c]]
    else:
      class_names, how = (), "one folder of unlabelled images (test: a seeded 10%)"
      everything = [(p, -1) for p in _images_in(root)]
    files["train"], files["test"] = _holdout(everything, HOLDOUT_SEED)
  if not files["train"]:
    raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}; see the layouts in "
                     "ssl_jax/data/folders.py (e.g. ROOT/train/<class>/*.png).")
  unlabelled_dir = os.path.join(root, UNLABELLED_FOLDER)
  if os.path.isdir(unlabelled_dir):
    files[UNLABELLED_FOLDER] = [(p, -1) for p in _images_in(unlabelled_dir, recursive=True)]
  return Layout(root=root, files={k: tuple(v) for k, v in files.items() if v or k == "test"},
                class_names=class_names, how=how)


def decode(path: str, *, image_size: int, channels: int) -> np.ndarray:
  """uint8 [S, S, channels] of an image file: converted ("L" or "RGB") and resized (bilinear) with PIL."""
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as im:
      im = im.convert("L" if channels == 1 else "RGB")
      if image_size and im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.BILINEAR)
      array = np.asarray(im, np.uint8)
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
    raise ValueError(f"The image file {path} does not decode ({type(e).__name__}: "
                     f"{' '.join(str(e).split())[:120]}); replace or remove it.") from e
  return array.reshape(array.shape[0], array.shape[1], channels)


def probe(layout: Layout, *, image_size: int, channels: int) -> tuple[int, int]:
  """(image size, channels) the folder will be prepared with: `channels=0` is 1 when every image is
  grayscale, else 3; `image_size=0` is the images' common size (an error when sizes differ)."""
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  if image_size and channels:
    return image_size, channels
  sizes, gray = set(), True
  for split in layout.files.values():
    for path, _ in split:
      try:
        with Image.open(path) as im:  # reads the header only
          sizes.add(im.size)
          gray &= im.mode in ("1", "L", "LA", "I", "I;16", "F")
      except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"The image file {path} does not decode ({type(e).__name__}); replace or remove "
                         "it.") from e
  if not image_size:
    if len(sizes) != 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
      shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
      raise ValueError(f"The images in {layout.root} are not all square of one size ({shown}...); set "
                       "--config.data.image_size=S to resize them to S x S.")
    image_size = next(iter(sizes))[0]
  return image_size, channels or (1 if gray else 3)


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """One folder at one size: where it is, its class names, the image shape and how it was laid out."""
  root: str = ""
  class_names: tuple[str, ...] = ()
  image_size: int = 0
  channels: int = 3
  layout: Layout | None = dataclasses.field(default=None, repr=False)


class FolderImages(tfds.core.GeneratorBasedBuilder):
  """A folder of image files (see `ssl_jax.data.folders`), prepared into TFDS records at a fixed size."""

  code_path = _code_path

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Images decoded with PIL, converted to L/RGB and resized bilinearly."}

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    label = (tfds.features.ClassLabel(names=list(c.class_names)) if c.class_names
             else tfds.features.ClassLabel(num_classes=1))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(c.image_size, c.image_size, c.channels)),
            "label": label,
            "labelled": tfds.features.Scalar(np.bool_),
            "path": tfds.features.Text(),
        }),
        supervised_keys=None,
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
        description=f"Images of {c.root}.",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager
    layout = self.builder_config.layout
    self.info.metadata["source_fingerprint"] = layout.fingerprint()
    self.info.metadata["layout"] = layout.how
    return {split: self._generate_examples(files, stats=split == "train")
            for split, files in layout.files.items()}

  def _generate_examples(self, files, *, stats: bool):
    c = self.builder_config
    total = np.zeros((3, c.channels), np.float64)  # count, sum, sum of squares per channel
    for i, (path, label) in enumerate(files):
      image = decode(path, image_size=c.image_size, channels=c.channels)
      if stats:
        x = image.reshape(-1, c.channels) / 255.0
        total += [np.full(c.channels, len(x)), x.sum(0), (x * x).sum(0)]
      yield i, {"image": encode_png(image), "label": max(label, 0), "labelled": label >= 0,
                "path": os.path.relpath(path, c.root)}
    if stats:  # the training images' mean and std per channel, in [0, 1], for normalisation
      mean = total[1] / total[0]
      std = np.sqrt(np.maximum(total[2] / total[0] - mean ** 2, 1e-12))
      self.info.metadata["mean"] = [round(float(v), 4) for v in mean]
      self.info.metadata["std"] = [round(float(v), 4) for v in np.maximum(std, 1e-3)]


def mean_std(builder: FolderImages) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """The per-channel mean and std of the prepared folder's training images."""
  return tuple(builder.info.metadata["mean"]), tuple(builder.info.metadata["std"])


def prepare(root: str, *, image_size: int = 0, channels: int = 0,
            tfds_data_dir: str | None = None) -> FolderImages:
  """Prepare (once per folder, size and channels; again when a file changed) and return the builder."""
  configure_tensorflow()
  layout = scan(root)
  image_size, channels = probe(layout, image_size=image_size, channels=channels)
  key = hashlib.sha1(layout.root.encode()).hexdigest()[:10]
  base = "".join(ch if ch.isalnum() else "_" for ch in os.path.basename(layout.root).lower())[:40] or "root"
  config = FolderConfig(name=f"{base}_{key}_{image_size}px_{channels}c", root=layout.root,
                        class_names=layout.class_names, image_size=image_size, channels=channels, layout=layout,
                        version=FolderImages.VERSION)
  with _prepare_lock(f"folder_images/{config.name}", tfds_data_dir):
    builder = FolderImages(config=config, data_dir=tfds_data_dir)
    fingerprint = layout.fingerprint()
    if builder.is_prepared() and builder.info.metadata.get("source_fingerprint") == fingerprint:
      return builder
    mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if builder.is_prepared()
            else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(download_mode=mode))
  return builder
