"""The namegen HTTP service (FastAPI). `namegen serve` runs it; app/main.py builds it.

The service never uses NumPy, and its image and virtualenvs need not have it; torch warns at import
when it is missing ("Failed to initialize NumPy"), which would be the first thing a newcomer reads on
a clean start. That one warning is silenced here, before anything of the service imports torch."""

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
