"""The one error type a user can act on.

Everything that is wrong with the input (a flag, a file, a field) is raised as ``InputError`` with a message that
names the culprit and what is accepted; the CLI prints it as one line and exits 2.
"""


class InputError(ValueError):
    """Bad input: a flag value, a file or a field inside a file."""


class Terminated(BaseException):
    """SIGTERM arrived (raised by the handler ``_entry`` installs): unwinds like Ctrl-C, so that no partial output
    file is left and the command exits 143 with one line."""
