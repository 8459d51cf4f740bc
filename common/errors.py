"""The one exception type a user can cause: the command line turns it into one line on stderr."""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line; never a bug."""


class BuildTooSlow(UserError):
    """A build that runs so slowly here that measuring it would take many minutes (OpenVINO INT8
    with an fp16 remainder on an AMX Xeon): a trial drops it; asked for alone, it is one line."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: libraries' errors can run to pages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
