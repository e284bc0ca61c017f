"""The ganshou command line."""
