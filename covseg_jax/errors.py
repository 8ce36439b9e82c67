"""The one exception type for bad user input (files, data and run directories, config values,
environment variables).

Entry points catch it and print `error: <message>` on one line with exit status 2; anything
else that escapes is a bug and keeps its traceback.
"""


class InputError(ValueError):
  """Bad input. The message names the file, directory, environment variable or config field and
  the problem in one line."""
