"""The one exception every stage raises for bad usage or bad input.

The CLI turns it into a one-line message on stderr and exit status 2; no traceback. It lives here (and
nowhere heavier) so that every stage, the showroom included, can raise it without importing another stage.
"""


class CarscopeError(Exception):
    """Bad usage or bad input: a message a user can act on, printed as one line."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int = 2):
        super().__init__(" ".join(str(message).split()))  # always one line
        self.exit_code = exit_code
