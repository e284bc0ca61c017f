# The shared fixtures (real Kafka and PostgreSQL from the local stack) live in one plugin.
pytest_plugins = ["ganshou_common.testing.fixtures"]
