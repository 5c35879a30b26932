"""The console: web pages over the service (``relaybaton serve`` at ``/``)."""

from relaybaton.service.console._console import Console

__all__ = ["Console"]
