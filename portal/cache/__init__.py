"""The cache backends made for the gateway check: Redis with its local tier, local memory."""
