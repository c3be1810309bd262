"""User-facing errors. The CLI prints `error: <message>` (one line) and exits with code 2."""


class InterpError(ValueError):
    """Bad input or an impossible request; the message is one line meant for the user."""
