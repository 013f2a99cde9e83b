"""Patient-level bags from a folder tree (the OCT case): one folder of images per patient, one label each.

    root/
      labels.csv            patient_id,label     (a header line, then one line per patient; label 0 or 1)
      P0001/*.png           any number of images per patient (png, jpg, jpeg, bmp, tif), grayscale or RGB
      P0002/*.png

Every image is converted to `channels` (1: grayscale, 3: RGB; `data.channels`, 0 = grayscale when every image
is) and resized (bilinear) to `image_size` x `image_size` (`data.image_size`), decoded as `ssl_jax.data.folders`
decodes; a patient's images, sorted by file name, are its bag. Mistakes in the tree
are one-sentence `ValueError`s naming the file: a patient folder without images, an image that does
not decode, a patient missing from labels.csv (or a label that is not 0 or 1, or a labels.csv row
without a folder).
"""

from __future__ import annotations

import csv
import os

import numpy as np

from ssl_jax.data.folders import IMAGE_EXTENSIONS  # noqa: E402  (the formats PIL reads)


def read_labels(root: str) -> dict[str, int]:
  """{patient_id: 0 or 1} from `root/labels.csv` (header `patient_id,label`)."""
  path = os.path.join(root, "labels.csv")
  if not os.path.isfile(path):
    raise ValueError(f"{path} is missing; write a header line patient_id,label and one line per patient "
                     "folder of the bag root.")
  labels: dict[str, int] = {}
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  for line, row in enumerate(rows, 1):
    if not row or (line == 1 and row[0].strip().lower() == "patient_id"):
      continue
    if len(row) < 2 or row[1].strip() not in ("0", "1"):
      raise ValueError(f"Line {line} of {path} is {','.join(row)!r}, not `patient_id,label` with a label of "
                       "0 or 1; fix that line.")
    labels[row[0].strip()] = int(row[1].strip())
  return labels


def read_image(path: str, *, image_size: int, channels: int) -> np.ndarray:
  """One image as uint8 [image_size, image_size, channels]; a file that does not decode is a ValueError."""
  from ssl_jax.data.folders import decode  # pylint: disable=g-import-not-at-top
  return decode(path, image_size=image_size, channels=channels)


def detect_channels(*roots: str) -> int:
  """1 when every image under the patient folders of `roots` is grayscale, else 3 (headers only)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for root in roots:
    if not os.path.isdir(root):
      continue
    for patient in os.listdir(root):
      folder = os.path.join(root, patient)
      if not os.path.isdir(folder):
        continue
      for name in os.listdir(folder):
        if name.lower().endswith(IMAGE_EXTENSIONS):
          try:
            with Image.open(os.path.join(folder, name)) as img:
              if img.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                return 3
          except OSError:
            continue  # reported with its name when the bags are read
  return 1


def read_bag_folder(root: str, *, image_size: int, channels: int) -> dict[str, np.ndarray | list]:
  """Every patient of `root` as a bag: {"patients": [P] ids, "images": list of uint8 [n_p, s, s, c], "label": int32 [P]}."""
  if not os.path.isdir(root):
    raise ValueError(f"The bag folder {root!r} does not exist; pass data.data_dir=<a folder with one "
                     "sub-folder of images per patient and labels.csv>.")
  if channels not in (1, 3) or image_size < 1:
    raise ValueError(f"Folder bags need channels 1 or 3 and image_size >= 1; got {channels} and {image_size}.")
  labels = read_labels(root)
  patients = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  if not patients:
    raise ValueError(f"The bag folder {root} has no patient sub-folders; put each patient's images in "
                     f"{root}/<patient_id>/.")
  orphans = sorted(set(labels) - set(patients))
  if orphans:
    raise ValueError(f"{root}/labels.csv lists patient {orphans[0]!r}, which has no folder in {root}; remove "
                     "the line or add the folder.")
  images, bag_labels = [], []
  for patient in patients:
    folder = os.path.join(root, patient)
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise ValueError(f"Patient folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)}); add its "
                       "images or remove the folder and its line in labels.csv.")
    if patient not in labels:
      raise ValueError(f"Patient {patient!r} (folder {folder}) has no line in {root}/labels.csv; add "
                       f"`{patient},<0 or 1>`.")
    images.append(np.stack([read_image(os.path.join(folder, f), image_size=image_size, channels=channels)
                            for f in files]))
    bag_labels.append(labels[patient])
  return {"patients": patients, "images": images, "label": np.asarray(bag_labels, np.int32)}


def pad_bags(images: list[np.ndarray], max_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(instances uint8 [P, max_size, ...] with zero padding, mask bool [P, max_size]) of per-patient stacks."""
  out = np.zeros((len(images), max_size, *images[0].shape[1:]), np.uint8)
  mask = np.zeros((len(images), max_size), bool)
  for i, stack in enumerate(images):
    out[i, :len(stack)] = stack
    mask[i, :len(stack)] = True
  return out, mask


def split_patients(labels: np.ndarray, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) patient indices: `test_fraction` of each label's patients (at least one) held out, seeded."""
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"mil.test_fraction must be in (0, 1), got {test_fraction}; or pass mil.test_dir.")
  rng = np.random.default_rng([seed, 7])
  train, test = [], []
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    k = min(max(1, int(round(test_fraction * len(members)))), len(members) - 1) if len(members) > 1 else 0
    test.extend(members[:k])
    train.extend(members[k:])
  if not test:
    raise ValueError("The bag folder has too few patients to hold any out for testing; add patients or pass "
                     "mil.test_dir.")
  return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(test, np.int64))
