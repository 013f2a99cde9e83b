"""ssl_jax.train."""
