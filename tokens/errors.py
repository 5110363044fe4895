"""Errors that the services raise, with messages fit to show to whoever asked."""


class TokenServiceError(Exception):
    """A refused or incomplete change, with a message fit to show to the person who asked."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
