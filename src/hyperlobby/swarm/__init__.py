"""Hyperswarm networking: UDX transport (udx, udx_protocol); the DHT layers build on it."""
