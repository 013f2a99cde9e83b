"""ssl_jax: self-, semi- and weakly supervised learning in JAX.

`from ssl_jax import losses` gives every loss as a pure function; it imports neither TensorFlow nor
any training machinery.
"""

__version__ = "0.1.0"
