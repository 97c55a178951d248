"""The project's exception types. Every error a user can cause is one of these."""


class LaminaError(Exception):
    """Base class of every error Lamina raises on bad input."""


class ShapeError(LaminaError):
    """Operand shapes or dtypes that an operator cannot accept."""


class InvalidAttributeError(LaminaError):
    """An attribute that is missing, unknown, or of the wrong type or value."""


class UnknownOpError(LaminaError):
    """An operator name that the registry does not know."""


class VerifyError(LaminaError):
    """A graph that breaks an IR invariant."""


class ParseError(LaminaError):
    """IR text that cannot be read back."""


class InputError(LaminaError):
    """Arguments to a compiled model that do not match its signature."""
