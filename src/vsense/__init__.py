"""vsense: an open platform for fleets of vision sensors."""

__version__ = "0.1.0"
