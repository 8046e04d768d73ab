"""Type stub of the Rust money-flow extension (rust_ext/binding)."""

def version() -> str:
    """Version of the Rust money-flow core."""
