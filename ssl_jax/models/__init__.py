"""ssl_jax.models."""
