"""Test set-up: 8 virtual CPU devices, so sharded code is tested on any machine, LLVM at optimisation level 1
(compiling is most of the suite's time), and a shared persistent compilation cache, so the many short runs of the
same steps compile once (subprocesses started by the tests inherit all three through the environment)."""

import os
import tempfile

# Must happen before JAX is imported anywhere. LLVM optimisation level 1 instead of 3: the suite's steps are tiny,
# so compiling is most of its time, and with a cold compilation cache (a fresh CI machine) the whole suite took 25
# minutes on 2 cores; a sample of 12 protocol tests took 98 s instead of 141 s, same results (2026-12-04).
# Level 0 is not an option: SimCLR's gradients came out NaN at step 3 under it.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    " --xla_backend_optimization_level=1").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"ssl_jax_test_jax_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)
