"""How the portal is served: gunicorn's worker and its reader of plain gateway checks."""
