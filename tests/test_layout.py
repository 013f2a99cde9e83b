"""The package's layering: methods, data, evaluation and models never import the trainer; no import cycles."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ssl_jax")


def _imports(path: str) -> set[str]:
  with open(path) as f:
    tree = ast.parse(f.read())
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.add(node.module)
      names.update(f"{node.module}.{a.name}" for a in node.names)
  return names


def _modules(sub: str):
  for root, _, files in os.walk(os.path.join(PACKAGE, sub)):
    for name in files:
      if name.endswith(".py"):
        yield os.path.join(root, name)


def test_lower_layers_never_import_the_trainer():
  for sub in ("methods", "data", "evaluation", "models", "losses"):
    for path in _modules(sub):
      bad = sorted(n for n in _imports(path) if n.startswith(("ssl_jax.train", "ssl_jax.main", "ssl_jax.cli")))
      assert not bad, f"{os.path.relpath(path, PACKAGE)} imports {bad}"


def test_dataset_modules_do_not_import_each_other_in_a_cycle():
  idx = _imports(os.path.join(PACKAGE, "data", "idx.py"))
  assert not any(n.startswith("ssl_jax.data.datasets") for n in idx), "idx.py must not import datasets.py"


def test_methods_are_listed_in_one_plain_dict():
  from ssl_jax.methods import METHODS
  assert isinstance(METHODS, dict)
  for name, module in METHODS.items():
    family = module.__name__.split(".")[-2]
    assert family in ("ssl", "semi", "mil", "metric", "transfer") and module.__name__.endswith("." + name)
    for attr in ("config", "SUITES", "stream", "make", "init", "step", "predict"):
      assert hasattr(module, attr), f"{name} lacks {attr}"
