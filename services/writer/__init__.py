"""The writer: the only component that talks to PostgreSQL."""
