"""The one exception type that reaches a user as a single line instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: the message names the input and what to do about it."""
