"""The wire: secret-stream (Noise XX + secretstream), protomux, hypercore replication."""
