"""One error root for everything Sprout reports to a person.

Every failure a user can cause or fix (bad input, a missing or broken file, a model that will not load,
a locked database, an unreachable server, …) is raised as a :class:`SproutError` subclass whose message
says what went wrong *and what to do*. The CLI (``sprout_core.cli.main``) and the pages
(``sprout_core.ui.show_error``) catch :class:`SproutError` at their boundary and show the message; anything
else is a bug and is shown as its type and message only (never a stack trace in the browser).

Each subclass also derives from the matching built-in (``ValueError``, ``FileNotFoundError``, …) so code
that catches the built-in keeps working.

Modules keep their historical names as aliases or subclasses (``paths.MissingDataError``,
``grid.TraceError``, ``profiles.ProfileError``, ``store.StoreError``, ``models.ModelLoadError``,
``generation.PromptError``); new code raises from here.
"""
from __future__ import annotations


class SproutError(Exception):
    """Root of all errors Sprout shows to a user. ``str(exc)`` is the full, actionable message."""

    #: Short category shown before the message in the UI ("Input", "Data", …).
    kind = "Error"

    def user_message(self) -> str:
        """The message to show a person (no type name, no stack)."""
        return str(self) or self.__class__.__name__


class InputError(SproutError, ValueError):
    """A value a person gave is invalid (out of range, not finite, unknown name, …).

    Raised *before* any expensive work (model load, generation, simulation) starts."""

    kind = "Input"


class UnknownNameError(InputError, KeyError):
    """A name a person gave (level, directive set, preset, backend, judge, run …) is not one Sprout knows.

    Also a ``KeyError`` so older callers that catch ``KeyError`` keep working; ``str(exc)`` is the
    plain message (a bare ``KeyError`` would quote it)."""

    __str__ = BaseException.__str__


class MissingDataError(SproutError, FileNotFoundError):
    """A data file or folder is absent; the message names it and how to get it."""

    kind = "Missing data"


class DataFileError(SproutError, ValueError):
    """A data file exists but is unusable; the message names the file and, where it applies, the line."""

    kind = "Data file"


class ProfileError(SproutError, ValueError):
    """A cost/quality profile cannot be built or combined; the message says what is missing."""

    kind = "Profile"


class ModelError(SproutError, RuntimeError):
    """A model cannot be found, loaded or used; the message names the folder and the problem."""

    kind = "Model"


class GenerationError(SproutError, RuntimeError):
    """Generating an answer failed (worker error, server stream cut, timeout)."""

    kind = "Generation"


class StoreError(SproutError, RuntimeError):
    """The database cannot be used (locked, corrupt, unwritable); the message says what to do."""

    kind = "Database"


class EnergyError(SproutError, RuntimeError):
    """An energy meter is absent or unusable; the message says why (and how to fix permissions)."""

    kind = "Energy meter"


class ServerError(SproutError, RuntimeError):
    """A serving engine (OpenAI-compatible server) is unreachable, refused the request or broke off."""

    kind = "Server"


class NotAllowedError(SproutError, PermissionError):
    """The action is reserved for the operator (shared/class mode) or the path is outside the allowed roots."""

    kind = "Not allowed"


class StorageError(SproutError, OSError):
    """The operating system refused a file operation (read-only folder, full disk, no permission, a lock held
    too long); the message names the folder and what to do, and nothing stored was changed."""

    kind = "Storage"


class QueuedError(StoreError):
    """A write could not reach the database, but what it carried was kept in the pending queue
    (``path``) and is added automatically once the database is usable again: nothing was lost."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def describe(exc: BaseException) -> str:
    """A one-line, user-facing description: the message of a :class:`SproutError`, else ``Type: message``.

    Never includes a stack trace; used at the CLI and page boundaries.
    """
    if isinstance(exc, SproutError):
        return exc.user_message()
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def internal_error_message(exc: BaseException) -> str:
    """What a person sees for an error that is not a :class:`SproutError` (a bug): type and message, and
    that it is a bug, never a stack trace."""
    return (f"unexpected {describe(exc)} — this is a bug in Sprout, not something you did. Work stored so far is "
            "kept. Please report it with the command or page you used.")


def redact_paths(text: str, roots: "list[str] | tuple[str, ...]" = ()) -> str:
    """``text`` with server paths replaced by ``<server folder>``: each of ``roots`` (longest first), then any
    absolute path (``/a/b``, ``~/a``, ``C:\\a``). URLs (``http://host/…``) are kept. For messages shown to
    class-mode visitors (issue 20.1), who must not learn the server's file layout; the full message goes to
    the server's log."""
    import re

    s = str(text)
    for r in sorted({str(r) for r in roots if r and len(str(r)) > 1}, key=len, reverse=True):
        s = s.replace(r, "<server folder>")
    s = re.sub(r"(?<![\w.:/<>-])(?:~/|[A-Za-z]:\\|/)(?=[\w.~-])[^\s'\"(),;:]*", "<server folder>", s)
    return s
