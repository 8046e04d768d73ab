"""The transformer: a gRPC service around the Rust money-flow core, and its Python reference."""
