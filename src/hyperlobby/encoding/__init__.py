"""Encodings used by the stack: compact-encoding, protobuf varints, key ids and URLs."""
