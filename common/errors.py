"""The one exception type a user can cause: the command line turns it into one line on stderr."""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line; never a bug."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: libraries' errors can run to pages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
