"""The one exception type for mistakes a user can make (bad file, bad name, bad config).

The CLI prints it as a single line and exits non-zero; anything else is a bug and keeps
its traceback.
"""


class VismanipError(Exception):
    """A problem with the user's input; the message names it and says what to do."""
