"""twir-mail: the email distribution pipeline for This Week in Rust."""

__version__ = "0.1.0"
