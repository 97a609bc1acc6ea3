"""Exceptions that carry a one-line, user-facing message."""


class LiverwildError(Exception):
    """Base class: the message is meant to be shown to the user as is."""


class ImageReadError(LiverwildError):
    """An input image could not be used. The message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # rebuilt from its two arguments when it crosses a process boundary
        return type(self), (self.path, self.problem)


class ConfigurationError(LiverwildError):
    """A missing folder, variable or option; the message says what to set."""
