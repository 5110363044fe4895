"""The gateway check: cache keys and purges, the check and its SQL, the catalogue, paths,
last used, forward-auth."""
