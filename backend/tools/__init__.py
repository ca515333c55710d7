"""Developer tools run once by hand, not at run time (they may need packages the backend does not)."""
