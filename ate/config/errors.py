"""InputError: bad input named by file, line and column; the CLI prints it and exits 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """One line for the user: `file:line:col: what is wrong; what is allowed`."""

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line  # 1-based
        self.column = column  # 1-based
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"
