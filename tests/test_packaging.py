"""Installable beside any recent JAX: pyproject.toml holds version ranges, constraints.txt the tested pins.

The ranges' lower bounds must be exactly the versions CI installs (so every lower bound is tested), no
dependency may be pinned with `==` in pyproject.toml (a project that already has a newer jax, flax or
TensorFlow would then fail to resolve), and the license file must match the declared license.
"""

import os
import re
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["project"]


def _requirements():
  project = _pyproject()
  reqs = list(project["dependencies"])
  for extra in project["optional-dependencies"].values():
    reqs += [r for r in extra if not r.startswith("ssl_jax")]
  return reqs


def _constraints() -> dict[str, str]:
  pins = {}
  with open(os.path.join(ROOT, "constraints.txt")) as f:
    for line in f:
      line = line.split("#", 1)[0].strip()
      if line:
        name, version = line.split("==")
        pins[_norm(name)] = version
  return pins


def _norm(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def test_dependencies_are_ranges_whose_lower_bound_is_the_tested_pin():
  pins = _constraints()
  for req in _requirements():
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[a-z0-9,]+\])?>=([0-9.]+)(,<[0-9.]+)?", req.split(";")[0].strip())
    assert m, f"{req!r}: use a range 'name>=tested' (optionally ',<next major'), never '=='"
    name, extras, lower = m.group(1), m.group(2), m.group(3)
    if extras and name == "jax":  # jax[cuda12], jax[tpu]: same jax version as the core dependency
      continue
    assert _norm(name) in pins, f"{name} is not pinned in constraints.txt"
    assert pins[_norm(name)] == lower, f"{name}: lower bound {lower} but CI tests {pins[_norm(name)]}"


def test_license_file_matches_pyproject():
  project = _pyproject()
  assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
  with open(os.path.join(ROOT, "LICENSE")) as f:
    text = f.read()
  assert "Apache License" in text and "Version 2.0, January 2004" in text
