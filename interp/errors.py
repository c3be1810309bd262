"""User-facing errors. The CLI prints `error: <message>` (one line) and exits with code 2."""


class InterpError(ValueError):
    """Bad input or an impossible request; the message is one line meant for the user.

    `exit_code` is what the CLI exits with after printing it (2: a user error; a subclass for a
    failed job, e.g. a crashed distributed rank, says 1)."""

    exit_code = 2
