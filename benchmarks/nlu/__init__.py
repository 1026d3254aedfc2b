"""Intent-router benchmark on CLINC150: accuracy figures and gRPC serving throughput."""
