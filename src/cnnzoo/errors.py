"""Exceptions the command line turns into a one-line message and exit code 2 (no traceback)."""


class UserError(Exception):
    """A mistake in what the user asked for (bad name, bad value, missing file); the message says what to do."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise print their message with quotes
        return str(self.args[0]) if self.args else ""


class UnknownNameError(UserError, KeyError):
    """An unknown model/recipe/family name; the message suggests the closest valid names."""
