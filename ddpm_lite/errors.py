"""The errors ddpm-lite raises on purpose, each with a message that names the problem and the fix.

A leaf module: everything may import it, it imports nothing of the package. The command line prints any of them
as one line, `error: ...`, and exits with status 2.
"""


class DdpmLiteError(Exception):
    """Base class: bad input or a world that does not cooperate (a missing file, a full disk)."""


class UsageError(DdpmLiteError):
    """A command-line argument that makes no sense, found before any work starts."""


class CheckpointError(DdpmLiteError, RuntimeError):
    """A file that is not a readable, trustworthy ddpm-lite checkpoint."""


class DataNotFoundError(DdpmLiteError, RuntimeError):
    """A dataset that is neither on disk nor downloadable."""


class TrainingDiverged(DdpmLiteError, RuntimeError):
    """The loss became NaN or infinite; training stopped without saving over the last good checkpoint."""


class RunFolderError(DdpmLiteError, RuntimeError):
    """The run folder cannot be written, or another training run is using it."""
