"""The project's exception and warning types. Every error a user can cause is one of these.

Where Python users would expect a built-in type, the error is one as well (a bad shape or
value is a ValueError, a wrong argument type a TypeError, a missing optional package an
ImportError), so `except ValueError` around a call keeps working."""


class LaminaError(Exception):
    """Base class of every error Lamina raises on bad input."""


class LaminaWarning(UserWarning):
    """Base class of Lamina's warnings: something works, but probably not as meant."""


class ShapeError(LaminaError, ValueError):
    """Operand shapes or dtypes that an operator cannot accept."""


class InvalidAttributeError(LaminaError, ValueError):
    """An attribute that is missing, unknown, or of the wrong type or value."""


class UnknownOpError(LaminaError, ValueError):
    """An operator name that the registry does not know."""


class VerifyError(LaminaError, ValueError):
    """A graph that breaks an IR invariant."""


class ParseError(LaminaError, ValueError):
    """IR text that cannot be read back."""


class InputError(LaminaError, ValueError):
    """Arguments to a compiled model that do not match its signature."""


class OptionError(LaminaError, ValueError):
    """An argument or option of a public function (or a CLI option) that is unknown, out of
    range, or of the wrong type; the message names the function and the option."""


class OptionTypeError(OptionError, TypeError):
    """An OptionError about a type (or a call that does not fit the signature): a TypeError
    too, as Python's own would be."""


class PathError(LaminaError, OSError):
    """A file or folder that cannot be read or written; names the path (`.filename`)."""

    def __str__(self) -> str:  # the message given, not OSError's "[Errno N] ..." rebuilt
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(LaminaError, ImportError):
    """An optional package that a feature needs is not installed; says what to install."""
