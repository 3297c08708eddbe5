"""User-facing errors: one line, naming the file and the field at fault."""

from __future__ import annotations


class DsrError(Exception):
    """An error caused by the user's input (a file, a flag, a query), not by a bug.

    The CLI prints ``str(err)`` on one line and exits non-zero, without a traceback.
    """


class RecordError(DsrError):
    """A scene record is unreadable or violates the schema.

    ``field`` is the dotted path of the offending value (e.g. ``objects[2].boxes_xyxy``).
    """

    def __init__(self, message: str, *, field: str = "", path: str = "") -> None:
        self.message = message
        self.field = field
        self.path = path
        where = ": ".join(p for p in (path, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
