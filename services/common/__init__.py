"""Shared building blocks: configuration, logging, NZ time, gRPC server and client helpers."""
