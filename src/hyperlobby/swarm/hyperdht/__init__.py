"""HyperDHT (npm hyperdht) on top of dht-rpc: wire structures (``messages``) and numbers (``constants``)."""
