"""The one exception type for bad user input (files, data directories, run directories).

Entry points catch it and print `error: <message>` on one line with exit status 2; anything
else that escapes is a bug and keeps its traceback.
"""


class InputError(Exception):
  """Bad input. The message names the file (or directory) and the problem in one line."""
