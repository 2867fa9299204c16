"""The gateway: the only public edge of the platform."""
