"""sipfarm: a SIP Farm signaling server."""

__version__ = "0.1.0"
