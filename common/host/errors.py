"""The one exception type a user can cause: the command line turns it into one line on stderr."""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line; never a bug."""


class BuildTooSlow(UserError):
    """A build that runs so slowly here that measuring it would take many minutes (OpenVINO INT8
    with an fp16 remainder on an AMX Xeon): a trial drops it; asked for alone, it is one line."""


class NoBuildLeft(UserError):
    """Every candidate of a trial was dropped (too slow, or failed): said with each one's reason."""


class NotBuilt(UserError):
    """A build that is not in the cache where none may be made (--rebuild never, --execute): a
    trial goes on without it; asked for alone, it is one line."""


class BuildFailed(UserError):
    """A build that failed where a compiler or runtime did (inductor, Triton, a provider): a trial
    drops it with its cause and goes on with the others; asked for alone, it is one line."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: libraries' errors can run to pages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def root_cause(exc: BaseException) -> str:
    """The innermost cause of a wrapped error, as 'Type: its first line': inductor's
    BackendCompilerFailed says only "backend='inductor' raised:" and keeps the real one in
    `inner_exception`; others chain it (`raise ... from`, or raising while handling it)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__ or \
            (None if exc.__suppress_context__ else exc.__context__)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return f"{type(exc).__name__}: {first_line(exc)}"
