"""The transactional outbox relay (see relay.py for its guarantees)."""
