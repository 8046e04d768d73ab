"""The gateway: the REST contract over gRPC, and the dashboard."""
