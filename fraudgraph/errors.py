"""Errors the CLI reports as one line (``error: ...``) with no traceback.

Each message names the problem and the fix.
"""

from __future__ import annotations


class FraudgraphError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""


class ConfigError(FraudgraphError):
    """A setting is missing, malformed or unsafe."""


class StackError(FraudgraphError):
    """A local-stack service failed to install, start or answer."""


class ServiceUnavailable(FraudgraphError):
    """A service the command needs does not answer."""
