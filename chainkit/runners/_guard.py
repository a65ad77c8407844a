"""Guards on a batch's results file: it is never the input file, it has one writer at a
time, and a failed write (a full disk) is said plainly.

- :func:`refuse_input_as_output`: the same path, a symlink or a hard link to the
  inputs is refused before anything is opened (``--overwrite`` would delete the
  inputs; ``--resume`` would feed the run its own output).
- :class:`ResultsLock`: an exclusive ``flock`` on the results file itself, taken
  before it is read or truncated and held until the run ends. The kernel drops
  it when its process dies, so a killed run leaves no stale lock: the next run
  takes it at once. A second writer gets a :class:`~chainkit.errors.ConfigError`.
  (On a platform without ``fcntl`` there is no lock.)
- :func:`write_error`: an ``OSError`` from writing the file as one line naming the
  file; ENOSPC and EDQUOT say "no space left" and how to go on.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from chainkit.errors import ChainkitRunError, ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["ResultsLock", "refuse_input_as_output", "write_error"]


def refuse_input_as_output(output: Path, inputs: Any) -> None:
    """Raise ``ConfigError`` when ``output`` is the input file (path, symlink or hard link)."""
    if not isinstance(inputs, str | os.PathLike):
        return
    source = Path(inputs)
    try:
        same = os.path.samefile(output, source)
    except OSError:  # one of them does not exist (yet): compare where the paths lead
        same = output.resolve() == source.resolve()
    if same:
        raise ConfigError(
            f"output file {output} is the input file {source} (the same file, or a link to "
            f"it); results written there would destroy the inputs: choose another output file"
        )


class ResultsLock:
    """An exclusive lock on a results file, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ConfigError(
                    f"output file {self.path} is being written by another run (two writers "
                    f"would mix their records); wait for it to end, or choose another output "
                    f"file"
                ) from None
        self._fd = fd

    def truncate(self) -> None:
        """Empty the file (``--overwrite``), keeping the inode the lock is on."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def write_error(path: Path, exc: OSError) -> ChainkitRunError:
    """The error to raise when writing the results file ``path`` failed with ``exc``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ChainkitRunError(
            f"cannot write to the results file {path}: no space left on the device; every "
            f"record written before is kept: free some space (or move the file) and run again "
            f"with --resume"
        )
    return ChainkitRunError(
        f"cannot write to the results file {path}: {exc.strerror or exc}; every record "
        f"written before is kept: fix it and run again with --resume"
    )
