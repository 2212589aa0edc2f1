"""One exception type for mistakes a user can fix: the CLI prints its message on one line, without a traceback."""


class CnnlabError(Exception):
    """A problem with the user's input or environment; the message names the culprit and what to do."""
