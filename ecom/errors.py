"""Errors a user can cause. The CLI prints them as one sentence (tracebacks only with --verbose)."""


class UserError(Exception):
    """A problem the user can fix: the message says what happened and what to do."""
