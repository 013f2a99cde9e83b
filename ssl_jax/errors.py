"""One exception type for mistakes a user can fix; `ssl_jax.main` prints it as one sentence."""


class UserError(Exception):
  """A problem with the config, the data or the environment, with its fix in the message.

  The message is one sentence that says what is wrong and how to fix it. Entry points print it without
  a traceback and exit with status `exit_code` (2; a subclass may choose another).
  """
  exit_code = 2
