"""Hypercore 11: flat-tree, Merkle tree and proofs, bitfield, cores, the Store, storage."""
