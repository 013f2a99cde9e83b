"""ssl_jax.evaluation."""
