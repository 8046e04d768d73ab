"""Raceday: real-time NZ TAB racing money flow."""

__version__ = "0.1.0"
