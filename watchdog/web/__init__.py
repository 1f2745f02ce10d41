"""HTTP: public endpoints, the loopback admin API, metrics; typed against small protocols, never the service."""
