"""Typed errors the core raises, each with a message a user can act on."""


class GalleryError(Exception):
    """Base class: the message is shown to the user as is."""


class ModelUnavailable(GalleryError):
    """The SigLIP checkpoint could not be loaded (offline, bad folder, corrupt file)."""


class CorruptIndex(GalleryError):
    """A library file on disk cannot be read and could not be rebuilt."""


class LibraryMismatch(GalleryError):
    """A library on disk belongs to another model or a newer schema."""


class ConfigError(GalleryError):
    """A user file (expansions, settings) is not valid."""


class CalibrationError(GalleryError):
    """Scores cannot be calibrated from the data given (too little, too alike, contradictory)."""


class CorruptCatalog(CorruptIndex):
    """The catalog (the source of truth) is damaged; it is never deleted or overwritten."""


class LibraryInUse(GalleryError):
    """Another process is writing to the library (or holds a lock on its catalog)."""


class DiskFull(GalleryError):
    """A write failed for lack of space (ENOSPC, SQLITE_FULL); what was committed is intact."""


class NotRegularFile(GalleryError):
    """A library file is a FIFO, a device or a folder: opening it could hang or fill memory."""


class NonFiniteVectors(ModelUnavailable):
    """The model produced NaN or infinite embeddings; `bad_rows` are the inputs affected."""

    def __init__(self, message: str, bad_rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.bad_rows = bad_rows
