"""The package's exceptions: one root, a shallow tree, context in every message.

::

    NhiError
     ├── InputError        a record or file that cannot be read or parsed
     ├── ConfigError       a configuration or rules file that is invalid
     ├── StateError        a snapshot or serialised model that cannot be loaded
     └── SinkError         an output (file, topic) that cannot be written
"""


class NhiError(Exception):
    """Root of every error raised on purpose by nhi-detector."""


class InputError(NhiError):
    """A record or file could not be read; carries where it came from."""

    def __init__(self, reason: str, message: str, *, origin: str | None = None) -> None:
        self.reason = reason
        self.origin = origin
        where = f" at {origin}" if origin else ""
        super().__init__(f"{message}{where} (reason={reason})")


class ConfigError(NhiError):
    """A configuration file is invalid; the message names the file and key."""


class StateError(NhiError):
    """Serialised state (a snapshot, a model blob) cannot be loaded safely."""


class SinkError(NhiError):
    """An output could not be written."""
