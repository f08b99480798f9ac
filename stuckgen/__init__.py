"""stuckgen: find, explain and safely remediate background jobs stuck in 'processing'."""

__version__ = "0.1.0"
