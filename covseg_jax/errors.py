"""The exceptions entry points turn into a one-line message and an exit status: InputError for
bad user input (files, data and run directories, config values, environment variables; `error:
<message>`, exit status 2) and Preempted for a run stopped by SIGTERM (exit status 143).
Anything else that escapes is a bug and keeps its traceback.
"""


class InputError(ValueError):
  """Bad input. The message names the file, directory, environment variable or config field and
  the problem in one line."""


PREEMPTED_EXIT_STATUS = 143  # 128 + SIGTERM: what a shell reports for a process ended by it.


class Preempted(Exception):
  """Training stopped at a preemption notice (SIGTERM) after saving a checkpoint; the same
  command resumes it. Entry points print the message and exit with PREEMPTED_EXIT_STATUS."""
