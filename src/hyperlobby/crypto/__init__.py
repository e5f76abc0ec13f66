"""Keys, signatures, namespaces and hashes (libsodium through PyNaCl, BLAKE2b)."""
